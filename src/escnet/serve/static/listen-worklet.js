// The Listen button's AudioWorklet (static/listen.js loads it): the microphone's samples, mixed
// to mono by the node, as raw 16-bit little-endian PCM messages of about 0.1 s each, the format
// the service's WebSocket /listen reads. It runs on the audio thread: no allocation per sample.
"use strict";

class PcmSender extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = Math.max(128, Math.round(sampleRate / 10));
    this.buffer = new Int16Array(this.size);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const v = Math.max(-1, Math.min(1, channel[i]));
      this.buffer[this.filled++] = Math.round(v * 32767);
      if (this.filled === this.size) {
        // Hand the buffer over (no copy) and start a new one.
        this.port.postMessage(this.buffer.buffer, [this.buffer.buffer]);
        this.buffer = new Int16Array(this.size);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("pcm-sender", PcmSender);
