// pifocus phone page: live MJPEG preview, overlays from /api/status, controls via the JSON API.
// No build step, no libraries.  State for tests is kept in window.pifocus.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const img = $("preview"), canvas = $("overlay"), ctx = canvas.getContext("2d");
  const state = window.pifocus = {
    status: null, statusCount: 0, meter: 0, peak: 0, peakAt: 0, heatmap: false, drag: null,
    token: null, errors: 0, lastAction: null,
  };

  // -- token: ?token=... once, then remembered on this phone -------------------------------
  const q = new URLSearchParams(location.search);
  try {
    if (q.get("token")) localStorage.setItem("pifocus-token", q.get("token"));
    state.token = localStorage.getItem("pifocus-token");
  } catch (e) { state.token = q.get("token"); }

  function say(text, isError) {
    const m = $("msg");
    m.textContent = text || "";
    m.className = isError ? "error" : "";
  }

  async function post(path, body) {
    const headers = { "Content-Type": "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    let r;
    try {
      r = await fetch(path, { method: "POST", headers, body: JSON.stringify(body || {}) });
    } catch (e) { say("no connection to the rig", true); throw e; }
    let data = {};
    try { data = await r.json(); } catch (e) { /* empty */ }
    state.lastAction = { path, status: r.status, data };
    if (r.status === 401) {
      const t = window.prompt("This control needs the rig's token:");
      if (t) {
        state.token = t;
        try { localStorage.setItem("pifocus-token", t); } catch (e) { /* private mode */ }
        return post(path, body);
      }
    }
    if (!r.ok) { say(data.error || ("HTTP " + r.status), true); throw new Error(data.error); }
    return data;
  }

  // -- preview stream: reconnect when it drops ---------------------------------------------
  let retry = null;
  img.addEventListener("error", () => {
    if (retry) return;
    retry = setTimeout(() => { retry = null; img.src = "/stream.mjpg?t=" + Date.now(); }, 1000);
  });
  img.addEventListener("load", sizeCanvas);
  window.addEventListener("resize", sizeCanvas);

  function sizeCanvas() {
    const r = img.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(r.width * dpr)), h = Math.max(1, Math.round(r.height * dpr));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    draw();
  }

  // -- overlays: heat map, ROI, drag rectangle ----------------------------------------------
  function draw() {
    const W = canvas.width, H = canvas.height, s = state.status;
    ctx.clearRect(0, 0, W, H);
    if (s && state.heatmap && s.tiles && s.tiles.grid) {
      const [gx, gy, cw, ch] = s.tiles.grid;
      for (let r = 0; r < s.tiles.rows; r++) {
        for (let c = 0; c < s.tiles.cols; c++) {
          const p = s.tiles.p[r][c];
          if (p === null) {
            ctx.fillStyle = "rgba(128,128,128,0.18)";
          } else {
            ctx.fillStyle = "hsla(" + Math.round(120 * p) + ",95%,50%,0.38)";
          }
          ctx.fillRect((gx + c * cw) * W + 1, (gy + r * ch) * H + 1, cw * W - 2, ch * H - 2);
        }
      }
    }
    if (s && s.roi) {
      const [x, y, w, h] = s.roi;
      ctx.lineWidth = Math.max(2, W / 320);
      ctx.strokeStyle = s.in_focus ? "#2ecc40" : "#ffdc00";
      ctx.strokeRect(x * W, y * H, w * W, h * H);
    }
    const d = state.drag;
    if (d && d.moved) {
      ctx.setLineDash([8, 6]);
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 2;
      const r = dragRect(d);
      ctx.strokeRect(r[0] * W, r[1] * H, r[2] * W, r[3] * H);
      ctx.setLineDash([]);
    }
  }

  function norm(ev) {
    const r = canvas.getBoundingClientRect();
    return [Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width)),
            Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height))];
  }
  function dragRect(d) {
    const x = Math.min(d.x0, d.x1), y = Math.min(d.y0, d.y1);
    return [x, y, Math.abs(d.x1 - d.x0), Math.abs(d.y1 - d.y0)];
  }
  canvas.addEventListener("pointerdown", (ev) => {
    const [x, y] = norm(ev);
    state.drag = { x0: x, y0: y, x1: x, y1: y, moved: false };
    canvas.setPointerCapture(ev.pointerId);
  });
  canvas.addEventListener("pointermove", (ev) => {
    const d = state.drag;
    if (!d) return;
    [d.x1, d.y1] = norm(ev);
    d.moved = d.moved || Math.abs(d.x1 - d.x0) > 0.02 || Math.abs(d.y1 - d.y0) > 0.02;
    draw();
  });
  canvas.addEventListener("pointerup", () => {
    const d = state.drag;
    state.drag = null;
    if (!d) return;
    let roi;
    if (d.moved) {
      roi = dragRect(d);
      roi[2] = Math.max(roi[2], 0.05); roi[3] = Math.max(roi[3], 0.05);
    } else {  // a tap: a 30 % square-ish region centred where the finger landed
      const w = 0.3, h = 0.3;
      roi = [Math.min(Math.max(d.x0 - w / 2, 0), 1 - w), Math.min(Math.max(d.y0 - h / 2, 0), 1 - h), w, h];
    }
    roi[0] = Math.min(roi[0], 1 - roi[2]); roi[1] = Math.min(roi[1], 1 - roi[3]);
    roi = roi.map((v) => Math.round(v * 10000) / 10000);
    post("/api/roi", { roi }).then(() => say("focus region set")).catch(() => {});
    draw();
  });
  canvas.addEventListener("pointercancel", () => { state.drag = null; draw(); });

  // -- status polling ----------------------------------------------------------------------
  function show(s) {
    state.status = s;
    state.statusCount++;
    const v = $("verdict");
    v.textContent = s.error ? "camera lost" : s.verdict;
    v.className = "chip " + (s.error ? "err" : !s.ready ? "wait" : s.in_focus ? "ok" : s.verdict === "no detail" ? "wait" : "bad");
    $("fps").textContent = (s.fps || 0).toFixed(1) + " fps";
    $("pos").textContent = "pos " + (s.drive && s.drive.available && s.drive.position !== null ? s.drive.position : "–");
    $("clients").textContent = s.clients ? s.clients + (s.clients > 1 ? " viewers" : " viewer") : "";
    const banner = $("banner");
    banner.hidden = !s.error;
    banner.textContent = s.error ? s.error + " — reconnecting…" : "";

    const m = Math.max(0, Math.min(1, s.meter || 0)), now = performance.now();
    state.meter = m;
    if (m >= state.peak || now - state.peakAt > 1500) {  // peak hold, then fall back
      state.peak = m >= state.peak ? m : Math.max(m, state.peak - 0.05);
      if (m >= state.peak) state.peakAt = now;
    }
    $("meter-fill").style.width = (m * 100).toFixed(1) + "%";
    $("meter-peak").style.left = "calc(" + (state.peak * 100).toFixed(1) + "% - 2px)";
    $("meter-text").textContent = Math.round(m * 100) + "%";
    const meter = $("meter");
    meter.classList.toggle("ok", !!s.in_focus);
    meter.setAttribute("aria-valuenow", Math.round(m * 100));
    $("detail").textContent = "sharpness " + (s.sharpness === null ? "–" : Math.round(s.sharpness)) +
      " · best " + (s.peak_sharpness ? Math.round(s.peak_sharpness) : "–") + " · " + (s.mode || "");

    $("mode").textContent = s.mode === "cnn" ? "CNN" : "Laplacian";
    $("mode").setAttribute("aria-pressed", s.mode === "cnn" ? "true" : "false");
    if (s.preview) $("peaking").setAttribute("aria-pressed", s.preview.peaking ? "true" : "false");
    $("outputs").setAttribute("aria-pressed", s.outputs_on ? "true" : "false");
    $("outputs").disabled = !s.outputs_available;
    const noDrive = !(s.drive && s.drive.available);
    $("af").disabled = noDrive || (s.autofocus && s.autofocus.state === "running");
    document.querySelectorAll("[data-nudge]").forEach((b) => { b.disabled = noDrive; });
    const af = s.autofocus || {};
    let t = noDrive ? (s.drive && s.drive.error ? s.drive.error : "no focus drive") : "autofocus: " + (af.state || "idle");
    if (af.result && af.result.final_position !== undefined) {
      t += " → " + af.result.final_position + (af.result.reason ? " (" + af.result.reason + ")" : "");
    }
    if (af.error) t += ": " + af.error;
    $("af-state").textContent = t;
    draw();
  }

  async function poll() {
    try {
      const r = await fetch("/api/status", { cache: "no-store" });
      show(await r.json());
      state.errors = 0;
    } catch (e) {
      state.errors++;
      $("verdict").textContent = "offline";
      $("verdict").className = "chip err";
    }
    setTimeout(poll, state.errors ? 1000 : 200);
  }

  // -- controls ---------------------------------------------------------------------------
  $("af").addEventListener("click", () => {
    say("autofocus…");
    post("/api/autofocus", {}).then(() => say("autofocus started")).catch(() => {});
  });
  document.querySelectorAll("[data-nudge]").forEach((b) => b.addEventListener("click", () => {
    post("/api/nudge", { steps: parseInt(b.dataset.nudge, 10) })
      .then((d) => say("position " + d.position)).catch(() => {});
  }));
  $("capture").addEventListener("click", () => {
    post("/api/capture", {}).then((d) => {
      const m = $("msg");
      m.className = "";
      m.textContent = "saved ";
      const a = document.createElement("a");
      a.href = d.url; a.textContent = d.file; a.style.color = "inherit";
      m.appendChild(a);
    }).catch(() => {});
  });
  $("peaking").addEventListener("click", () => {
    const on = $("peaking").getAttribute("aria-pressed") !== "true";
    post("/api/mode", { peaking: on }).then((d) => $("peaking").setAttribute("aria-pressed", d.peaking)).catch(() => {});
  });
  $("outputs").addEventListener("click", () => {
    const on = $("outputs").getAttribute("aria-pressed") !== "true";
    post("/api/mode", { outputs: on })
      .then((d) => say(d.outputs ? "LED / buzzer on" : "LED / buzzer off")).catch(() => {});
  });
  $("heatmap").addEventListener("click", () => {
    state.heatmap = !state.heatmap;
    $("heatmap").setAttribute("aria-pressed", state.heatmap);
    draw();
  });
  $("mode").addEventListener("click", () => {
    const next = state.status && state.status.mode === "cnn" ? "laplacian" : "cnn";
    post("/api/mode", { analysis: next }).then((d) => say("analysis: " + d.analysis)).catch(() => {});
  });
  $("roi-reset").addEventListener("click", () => {
    post("/api/roi", { roi: null }).then(() => say("default focus region")).catch(() => {});
  });

  sizeCanvas();
  poll();
})();
