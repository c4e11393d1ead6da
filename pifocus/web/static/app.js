// pifocus phone page: live MJPEG preview, overlays from /api/status, controls via the JSON API.
// No build step, no libraries.  State for tests is kept in window.pifocus.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const img = $("preview"), canvas = $("overlay"), ctx = canvas.getContext("2d");
  const state = window.pifocus = {
    status: null, statusCount: 0, meter: 0, peak: 0, peakAt: 0, heatmap: false, drag: null,
    token: null, errors: 0, lastAction: null,
    zoom: { on: false, x: 0.5, y: 0.5, scale: 1, loads: 0, busy: false },
    afState: null, msgTimer: null,
  };

  // -- token: ?token=... once, then remembered on this phone -------------------------------
  const q = new URLSearchParams(location.search);
  try {
    if (q.get("token")) localStorage.setItem("pifocus-token", q.get("token"));
    state.token = localStorage.getItem("pifocus-token");
  } catch (e) { state.token = q.get("token"); }

  // Messages clear themselves (errors stay a little longer).
  function say(text, isError, ttlMs) {
    const m = $("msg");
    m.textContent = text ? pagePhrase(text) : "";
    m.className = isError ? "error" : "";
    clearTimeout(state.msgTimer);
    if (text) state.msgTimer = setTimeout(() => { m.textContent = ""; m.className = ""; }, ttlMs || (isError ? 8000 : 4000));
  }

  // Errors from the rig are written for the command line and the config file; say what to
  // do on this page instead.
  const PHRASES = [
    [/\s*\(--roi\)/g, " (drag a new focus region on the preview)"],
    [/move the ROI/g, "move the focus region"],
    [/widen drive\.min_position\/max_position/g, "widen the drive's limits in the rig's config"],
    [/\(web\.nudge_max_steps\)/g, ""],
    [/--no-outputs/g, "the service's start options"],
    [/raise exposure\/gain/g, "raise the exposure or gain"],
  ];
  function pagePhrase(text) {
    let t = String(text);
    for (const [re, rep] of PHRASES) t = t.replace(re, rep);
    return t;
  }
  state.pagePhrase = pagePhrase;  // for the browser tests

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
    if (!r.ok) {
      say(data.error || (r.status === 503 ? "not possible right now" : "the rig refused (HTTP " + r.status + ")"), true);
      throw new Error(data.error);
    }
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
          const blurred = s.tiles.blurred && s.tiles.blurred[r][c];
          if (blurred) {
            // too flat to judge here, out of focus one octave coarser: votes "not sharp"
            ctx.fillStyle = "hsla(230,95%,50%,0.22)";
          } else if (p === null) {
            ctx.fillStyle = "rgba(128,128,128,0.18)";
          } else {
            // blue (soft) -> teal -> green (sharp): never one of the peaking colours
            ctx.fillStyle = "hsla(" + Math.round(230 - 110 * p) + ",95%,50%,0.38)";
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
    try { canvas.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic event */ }
    clearTimeout(state.holdTimer);
    state.holdTimer = setTimeout(() => {  // tap-and-hold: magnify there
      const d = state.drag;
      if (d && !d.moved) { state.drag = null; setZoom(true, d.x0, d.y0); draw(); }
    }, 550);
  });
  canvas.addEventListener("pointermove", (ev) => {
    const d = state.drag;
    if (!d) return;
    [d.x1, d.y1] = norm(ev);
    d.moved = d.moved || Math.abs(d.x1 - d.x0) > 0.02 || Math.abs(d.y1 - d.y0) > 0.02;
    draw();
  });
  canvas.addEventListener("pointerup", () => {
    clearTimeout(state.holdTimer);
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
    v.className = "chip " + (s.error ? "err" : !s.ready ? "wait" : s.in_focus ? "ok" :
      s.verdict_code === "near" ? "near" : (s.verdict_code === "no_detail" || !s.verdict_code) ? "wait" : "bad");
    $("fps").textContent = (s.fps || 0).toFixed(1) + " fps";
    $("pos").textContent = "pos " + (s.drive && s.drive.available && s.drive.position !== null ? s.drive.position : "–");
    $("clients").textContent = s.clients ? s.clients + (s.clients > 1 ? " viewers" : " viewer") : "";
    const banner = $("banner");
    banner.hidden = !s.error;
    banner.textContent = s.error ? s.error + " — reconnecting…" : "";

    // Nothing to judge: the meter shows no reading rather than an old peak hold.
    const judged = s.judgeable !== false && s.verdict_code !== "no_detail" && !s.error;
    const m = judged ? Math.max(0, Math.min(1, s.meter || 0)) : 0, now = performance.now();
    state.meter = m;
    if (m >= state.peak || now - state.peakAt > 1500) {  // peak hold, then fall back
      state.peak = m >= state.peak ? m : Math.max(m, state.peak - 0.05);
      if (m >= state.peak) state.peakAt = now;
    }
    $("meter-fill").style.width = (m * 100).toFixed(1) + "%";
    $("meter-peak").style.left = "calc(" + (state.peak * 100).toFixed(1) + "% - 2px)";
    $("meter-text").textContent = judged ? Math.round(m * 100) + "%" : "–";
    const meter = $("meter");
    meter.classList.toggle("ok", !!s.in_focus);
    meter.classList.toggle("none", !judged);
    meter.setAttribute("aria-valuenow", Math.round(m * 100));
    $("detail").textContent = "sharpness " + (s.sharpness === null || s.sharpness === undefined ? "–" : Math.round(s.sharpness)) +
      " · best " + (s.peak_sharpness ? Math.round(s.peak_sharpness) : "–") +
      (s.blur_px !== null && s.blur_px !== undefined ? " · blur " + s.blur_px.toFixed(2) + " px" : "") +
      " · " + (s.mode || "");
    showExposure(s.exposure);
    if (s.preview) {
      $("zebra").setAttribute("aria-pressed", s.preview.zebra ? "true" : "false");
      if (s.preview.peaking_colour && document.activeElement !== $("peak-colour")) $("peak-colour").value = s.preview.peaking_colour;
    }
    fillStrategies(s.strategies);

    $("mode").textContent = s.mode === "cnn" ? "CNN" : "Laplacian";
    $("mode").setAttribute("aria-pressed", s.mode === "cnn" ? "true" : "false");
    if (s.preview) $("peaking").setAttribute("aria-pressed", s.preview.peaking ? "true" : "false");
    $("outputs").setAttribute("aria-pressed", s.outputs_on ? "true" : "false");
    $("outputs").disabled = !s.outputs_available;
    const noDrive = !(s.drive && s.drive.available);
    const running = !!(s.autofocus && s.autofocus.state === "running");
    $("af").disabled = noDrive || running;
    $("af-cancel").disabled = !running;
    $("af-follow").disabled = noDrive;
    showPresets(s.presets || {}, s.rack || {}, noDrive);
    showStack(s.stack || {}, s.presets || {}, noDrive || running);
    $("af-follow").setAttribute("aria-pressed", s.af_mode === "continuous" ? "true" : "false");
    document.querySelectorAll("[data-nudge]").forEach((b) => { b.disabled = noDrive; });
    const af = s.autofocus || {};
    let t = noDrive ? (s.drive && s.drive.error ? s.drive.error : "no focus drive") : "autofocus: " + (af.state || "idle");
    if (s.follow && s.follow.enabled) t += " · following (" + (s.follow.state || "…") + ", " + s.follow.searches + " refocus)";
    if (af.result && af.result.final_position !== undefined) {
      t += " → " + af.result.final_position + (af.result.reason ? " (" + af.result.reason + ")" : "");
    }
    if (af.error) t += ": " + af.error;
    $("af-state").textContent = pagePhrase(t);
    if (state.afState === "running" && af.state && af.state !== "running") {
      const r = af.result || {};
      say(af.state === "done" ? "autofocus done at " + r.final_position :
          af.state === "cancelled" ? "autofocus cancelled" :
          "autofocus failed: " + (r.reason || af.error || "see the status line"), af.state === "failed");
    }
    state.afState = af.state || null;
    drawCurve(af);
    draw();
  }

  // -- exposure: histogram, readout line, warning chip ---------------------------------------
  const CLIP_WARN_PCT = 1.0, SHADOW_WARN_PCT = 5.0, UNDER_EV = -2.0;
  function showExposure(e) {
    const chip = $("expo-chip");
    if (!e) { chip.hidden = true; $("expo").textContent = "exposure –"; return; }
    const parts = ["EV " + (e.ev_offset_roi >= 0 ? "+" : "") + e.ev_offset_roi.toFixed(1),
      "clip " + e.clip_high_pct_roi.toFixed(1) + "% / " + e.clip_low_pct_roi.toFixed(1) + "%"];
    if (e.iso) parts.push("ISO " + e.iso);
    if (e.exposure_us) parts.push(e.exposure_us >= 1e6 ? (e.exposure_us / 1e6).toFixed(1) + " s" : "1/" + Math.round(1e6 / e.exposure_us) + " s");
    parts.push("σ " + e.noise_sigma_dn.toFixed(1) + " DN");
    if (e.snr_db !== null) parts.push("SNR " + Math.round(e.snr_db) + " dB");
    $("expo").textContent = parts.join(" · ");
    let warn = "";
    if (e.clip_high_pct_roi > CLIP_WARN_PCT) warn = "overexposed " + e.clip_high_pct_roi.toFixed(1) + "%";
    else if (e.clip_low_pct_roi > SHADOW_WARN_PCT || e.ev_offset_roi < UNDER_EV) warn = "underexposed";
    chip.hidden = !warn;
    chip.textContent = warn;
    const hc = $("hist"), g = hc.getContext("2d"), h = e.histogram;
    g.clearRect(0, 0, hc.width, hc.height);
    if (!h || !h.length) return;
    const max = Math.max(...h, 1e-6), bw = hc.width / h.length;
    for (let i = 0; i < h.length; i++) {
      const clipped = i === 0 || i === h.length - 1;
      g.fillStyle = clipped && h[i] > 0.002 ? "#ff851b" : "#ccc";
      const bh = Math.max(h[i] > 0 ? 1 : 0, Math.round((h[i] / max) * (hc.height - 2)));
      g.fillRect(i * bw, hc.height - bh, Math.max(1, bw - 0.5), bh);
    }
    g.fillStyle = "rgba(255,255,255,.35)";  // mid-grey (118 DN)
    g.fillRect(Math.round(118 / 256 * hc.width), 0, 1, hc.height);
  }

  // -- the last autofocus curve ----------------------------------------------------------------
  let curveKey = "";
  function drawCurve(af) {
    const r = af && af.result, c = r && r.curve;
    const key = c ? JSON.stringify([c.length, r.final_position, c[c.length - 1]]) : "";
    if (key === curveKey) return;
    curveKey = key;
    const cv = $("afcurve"), g = cv.getContext("2d");
    g.clearRect(0, 0, cv.width, cv.height);
    if (!c || !c.length) return;
    const xs = c.map((p) => p[0]), ys = c.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y1 = Math.max(...ys, 1e-9);
    const X = (x) => 4 + (x - x0) / (x1 - x0) * (cv.width - 8), Y = (y) => cv.height - 4 - y / y1 * (cv.height - 10);
    const sorted = c.slice().sort((a, b) => a[0] - b[0]);
    g.strokeStyle = "#0b5ed7"; g.lineWidth = 1.5; g.beginPath();
    sorted.forEach((p, i) => (i ? g.lineTo(X(p[0]), Y(p[1])) : g.moveTo(X(p[0]), Y(p[1]))));
    g.stroke();
    g.fillStyle = "#eee";
    for (const p of c) g.fillRect(X(p[0]) - 2, Y(p[1]) - 2, 4, 4);
    if (r.final_position !== undefined && r.final_position !== null) {
      g.fillStyle = r.success === false ? "#ff4136" : "#2ecc40";
      g.fillRect(X(r.final_position) - 1, 0, 2, cv.height);
    }
    $("afcurve-text").textContent = "last AF: " + c.length + " samples, " + Math.round(x0) + "–" + Math.round(x1) +
      " → " + r.final_position + (r.success === false ? " (failed)" : "");
  }

  // -- the magnifier ---------------------------------------------------------------------------
  function zoomUrl() {
    const z = state.zoom, v = $("view").getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
    const w = Math.max(64, Math.min(960, Math.round(v.width * dpr))), h = Math.max(64, Math.min(720, Math.round(v.height * dpr)));
    return "/api/zoom?x=" + z.x.toFixed(4) + "&y=" + z.y.toFixed(4) + "&scale=" + z.scale + "&w=" + w + "&h=" + h +
      "&t=" + Date.now();
  }
  function loadZoom() {
    const z = state.zoom;
    if (!z.on || z.busy) return;
    z.busy = true;
    $("zoom").src = zoomUrl();
  }
  $("zoom").addEventListener("load", () => {
    const z = state.zoom;
    z.busy = false; z.loads++;
    if (z.on) setTimeout(loadZoom, 150);  // self-paced: one request in flight, ~5 per second at most
  });
  $("zoom").addEventListener("error", () => {
    state.zoom.busy = false;
    if (state.zoom.on) { say("no frame to magnify yet", true); setTimeout(loadZoom, 1000); }
  });
  function setZoom(on, x, y) {
    const z = state.zoom;
    z.on = on;
    if (x !== undefined) { z.x = x; z.y = y; }
    $("zoombox").hidden = !on;
    $("zoom-toggle").setAttribute("aria-pressed", on ? "true" : "false");
    $("zoom-label").textContent = on ? z.scale + "× sensor px · tap to move, hold for overview" : "";
    if (on) loadZoom();
  }
  // In the magnifier a tap moves the point (by a half view towards the tap); a hold leaves it.
  $("zoombox").addEventListener("pointerdown", (ev) => {
    const r = $("zoombox").getBoundingClientRect();
    const fx = (ev.clientX - r.left) / r.width - 0.5, fy = (ev.clientY - r.top) / r.height - 0.5;
    const z = state.zoom, s = state.status, size = (s && s.frame_size) || [r.width, r.height];
    const hold = setTimeout(() => setZoom(false), 550);
    const up = () => {
      clearTimeout(hold);
      $("zoombox").removeEventListener("pointerup", up);
      if (!z.on) return;
      z.x = Math.min(1, Math.max(0, z.x + fx * r.width / z.scale / size[0]));
      z.y = Math.min(1, Math.max(0, z.y + fy * r.height / z.scale / size[1]));
    };
    $("zoombox").addEventListener("pointerup", up);
  });
  $("zoom-toggle").addEventListener("click", () => {
    const s = state.status, roi = s && s.roi;
    if (state.zoom.on) setZoom(false);
    else if (roi) setZoom(true, roi[0] + roi[2] / 2, roi[1] + roi[3] / 2);
    else setZoom(true);
  });
  document.querySelectorAll("[data-scale]").forEach((b) => b.addEventListener("click", () => {
    state.zoom.scale = parseInt(b.dataset.scale, 10);
    document.querySelectorAll("[data-scale]").forEach((o) => o.setAttribute("aria-pressed", o === b ? "true" : "false"));
    if (!state.zoom.on) setZoom(true, state.zoom.x, state.zoom.y); else setZoom(true);
  }));

  // -- rack-focus presets -----------------------------------------------------------------------
  let presetsKey = "";
  function showPresets(presets, rack, noDrive) {
    const names = Object.keys(presets).sort();
    const key = JSON.stringify([names.map((n) => [n, presets[n].position]), noDrive]);
    if (key !== presetsKey) {
      presetsKey = key;
      const box = $("preset-buttons");
      box.textContent = "";
      for (const n of names.slice(0, 4)) {
        const b = document.createElement("button");
        b.dataset.preset = n;
        b.textContent = n;
        b.title = "rack focus to " + n + " (" + presets[n].position + ")";
        b.disabled = noDrive;
        b.addEventListener("click", () => {
          post("/api/presets", { go: n, speed: parseFloat($("rack-speed").value) })
            .then(() => { state.rackState = "moving"; say("to " + n + "…", false, 30000); }).catch(() => {});
        });
        box.appendChild(b);
      }
    }
    $("preset-save").disabled = noDrive;
    if (state.rackState === "moving" && rack.state && rack.state !== "moving") {
      say(rack.state === "done" ? "at " + rack.name + " (" + rack.position + ")" :
          rack.state + (rack.error ? ": " + rack.error : ""), rack.state === "failed");
    }
    state.rackState = rack.state || null;
  }
  $("preset-save").addEventListener("click", () => {
    const have = Object.keys((state.status && state.status.presets) || {});
    const next = ["A", "B", "C", "D"].find((n) => !have.includes(n)) || "A";
    const name = window.prompt("Save this lens position as preset:", next);
    if (!name) return;
    post("/api/presets", { save: name.trim() }).then((d) => say("preset " + d.preset.name + " = " + d.preset.position))
      .catch(() => {});
  });

  // -- focus bracket between presets A and B --------------------------------------------------
  function showStack(st, presets, busy) {
    const runningStack = st.state === "running";
    $("stack").disabled = busy || runningStack || !(presets.A && presets.B);
    $("stack-stop").disabled = !runningStack;
    let t = "";
    if (st.state && st.state !== "idle") {
      t = "stack " + st.state + (runningStack ? ": " + st.phase + " " + st.done + "/" + st.total : "") +
        (st.frames !== undefined ? ", " + st.frames + " frames" : "") + (st.out ? " → " + st.out : "") +
        (st.error ? ": " + st.error : "");
    }
    $("stack-state").textContent = pagePhrase(t);
    if (state.stackState === "running" && st.state && st.state !== "running") {
      say(st.state === "done" ? "bracket saved: " + st.frames + " frames in " + st.out : "bracket " + st.state +
          (st.error ? ": " + st.error : ""), st.state === "failed");
    }
    state.stackState = st.state || null;
  }
  $("stack").addEventListener("click", () => {
    const p = (state.status && state.status.presets) || {};
    if (!p.A || !p.B) { say("save presets A and B at the near and far ends first", true); return; }
    post("/api/stack", { near: p.A.position, far: p.B.position, fuse: $("stack-fuse").getAttribute("aria-pressed") === "true" })
      .then(() => { state.stackState = "running"; say("focus bracket running…", false, 60000); }).catch(() => {});
  });
  $("stack-fuse").addEventListener("click", () => {
    const on = $("stack-fuse").getAttribute("aria-pressed") !== "true";
    $("stack-fuse").setAttribute("aria-pressed", on ? "true" : "false");
  });
  $("stack-stop").addEventListener("click", () => {
    post("/api/stack", { stop: true }).then(() => say("bracket stopped")).catch(() => {});
  });

  // -- autofocus strategies offered by the rig ---------------------------------------------------
  let strategiesKey = "";
  function fillStrategies(list) {
    const key = JSON.stringify(list || []);
    if (key === strategiesKey) return;
    strategiesKey = key;
    const sel = $("af-strategy"), keep = sel.value;
    sel.length = 1;
    for (const name of list || []) {
      const o = document.createElement("option");
      o.value = o.textContent = name;
      sel.appendChild(o);
    }
    sel.value = keep;
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
    const strategy = $("af-strategy").value;
    post("/api/autofocus", strategy ? { strategy } : {}).then(() => {
      state.afState = "running";
      say("autofocus running…", false, 60000);  // replaced when the run ends
    }).catch(() => {});
  });
  $("af-cancel").addEventListener("click", () => {
    post("/api/autofocus/cancel", {}).then((d) => say("autofocus " + (d.autofocus.state || "cancelled"))).catch(() => {});
  });
  $("af-follow").addEventListener("click", () => {
    const on = $("af-follow").getAttribute("aria-pressed") !== "true";
    post("/api/mode", { af_mode: on ? "continuous" : "single" }).then((d) => {
      $("af-follow").setAttribute("aria-pressed", d.af_mode === "continuous" ? "true" : "false");
      say(d.af_mode === "continuous" ? "continuous AF: refocuses when the subject goes soft" : "single AF");
    }).catch(() => {});
  });
  $("zebra").addEventListener("click", () => {
    const on = $("zebra").getAttribute("aria-pressed") !== "true";
    post("/api/mode", { zebra: on }).then((d) => $("zebra").setAttribute("aria-pressed", d.zebra)).catch(() => {});
  });
  $("peak-colour").addEventListener("change", () => {
    post("/api/mode", { peaking_colour: $("peak-colour").value })
      .then((d) => say("peaking in " + d.peaking_colour)).catch(() => {});
  });
  document.querySelectorAll("[data-nudge]").forEach((b) => b.addEventListener("click", () => {
    post("/api/nudge", { steps: parseInt(b.dataset.nudge, 10) })
      .then((d) => say("position " + d.position)).catch(() => {});
  }));
  $("capture").addEventListener("click", () => {
    const fmt = $("capture-format").value;
    post("/api/capture", fmt ? { format: fmt } : {}).then((d) => {
      const m = $("msg");
      const what = d.file.endsWith(".dng") ? "raw DNG" : (d.color ? "colour" : "grey");
      say("saved ", false, 10000);
      m.textContent = "saved (" + what + ") ";
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
