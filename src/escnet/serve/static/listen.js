// The page's Listen button: the browser's microphone (getUserMedia + an AudioWorklet, see
// listen-worklet.js) streamed as 16-bit PCM over the WebSocket /listen; the service answers with
// each window's labels and with events, one per sound, shown as they come. Self-contained: it
// uses only the elements of the "live" panel of index.html.
"use strict";
(() => {
  const el = (id) => document.getElementById(id);
  // Messages waiting to leave beyond this many bytes mean the service falls behind the
  // microphone: drop audio (and say so) rather than let the delay grow without bound.
  const MAX_BUFFERED = 1 << 20;
  let session = null;

  function status(text, isError = false) {
    el("live-status").textContent = text;
    el("live-status").style.color = isError ? "#b3261e" : "";
  }

  function eventText(m) {
    const span = m.offset === null ? `${m.onset.toFixed(2)} s` :
      `${m.onset.toFixed(2)} – ${m.offset.toFixed(2)} s`;
    return `${span}  ${m.label}  ${m.score.toFixed(3)}`;
  }

  function onMessage(s, e) {
    const m = JSON.parse(e.data);
    if (m.type === "ready") {
      status(`listening: ${m.window}-s windows every ${m.hop} s, ${m.rate} Hz`);
      document.body.dataset.live = "on";
    } else if (m.type === "window") {
      const best = m.top_k[0];
      el("live-label").textContent = m.silent || !best ? "(silence)" :
        `${best.label}  ${(100 * best.probability).toFixed(0)} %`;
      el("live-label").title = `window ${m.start.toFixed(2)} – ${m.end.toFixed(2)} s`;
    } else if (m.type === "event") {
      const key = `${m.label}@${m.onset}`;
      let li = s.events.get(key);
      if (!li) {
        li = document.createElement("li");
        s.events.set(key, li);
        el("live-events").prepend(li);
      }
      li.textContent = eventText(m);
    } else if (m.type === "error") {
      status(`the service refused: ${m.detail}`, true);
    } else if (m.type === "end") {
      status(`stopped after ${m.duration.toFixed(1)} s: ${m.events} sound(s)`);
    }
  }

  async function start() {
    const button = el("listen");
    button.disabled = true;
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      });
      const ctx = new AudioContext();
      await ctx.audioWorklet.addModule("listen-worklet.js");
      const source = ctx.createMediaStreamSource(stream);
      const node = new AudioWorkletNode(ctx, "pcm-sender", {
        channelCount: 1, channelCountMode: "explicit", channelInterpretation: "speakers",
      });
      const url = new URL(`listen?rate=${ctx.sampleRate}`, location.href);
      url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      const s = { stream, ctx, node, ws, events: new Map(), dropped: 0 };
      ws.onmessage = (e) => onMessage(s, e);
      ws.onclose = (e) => {
        if (session === s) stop(false);
        if (e.code >= 4000) document.body.dataset.live = "refused";
      };
      node.port.onmessage = (e) => {
        if (ws.readyState !== WebSocket.OPEN) return;
        if (ws.bufferedAmount > MAX_BUFFERED) {
          s.dropped += 1;
          status(`the service falls behind: ${s.dropped} block(s) of audio dropped`, true);
          return;
        }
        ws.send(e.data);
      };
      source.connect(node);
      node.connect(ctx.destination);  // the node outputs silence; connected, it is pulled
      await ctx.resume();
      session = s;
      el("live-events").replaceChildren();
      button.textContent = "■ Stop listening";
      button.classList.add("on");
      status("connecting…");
    } catch (e) {
      // Browsers give the microphone only to secure pages: https, or http://localhost.
      status(`No microphone: ${e.message || e}`, true);
    } finally {
      button.disabled = false;
    }
  }

  function stop(sendEnd = true) {
    const s = session;
    session = null;
    if (!s) return;
    s.node.port.onmessage = null;
    s.node.disconnect();
    s.stream.getTracks().forEach((t) => t.stop());
    s.ctx.close();
    if (sendEnd && s.ws.readyState === WebSocket.OPEN) s.ws.send("end");  // flushes the last window
    el("listen").textContent = "● Listen";
    el("listen").classList.remove("on");
  }

  el("listen").addEventListener("click", () => (session ? stop() : start()));
})();
