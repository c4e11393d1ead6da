// pifocus rig dashboard: every camera's state from /api/rig, commands via POST /api/command.
// No build step, no libraries.  State for tests is kept in window.pifocusRig.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const state = window.pifocusRig = { rig: null, polls: 0, token: null, cards: {}, lastAction: null };
  const q = new URLSearchParams(location.search);
  try {
    if (q.get("token")) localStorage.setItem("pifocus-rig-token", q.get("token"));
    state.token = localStorage.getItem("pifocus-rig-token");
  } catch (e) { state.token = q.get("token"); }

  function say(text, isError) { const m = $("msg"); m.textContent = text || ""; m.className = isError ? "error" : ""; }

  async function command(name, target, args) {
    const headers = { "Content-Type": "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    let r;
    try {
      r = await fetch("/api/command", { method: "POST", headers, body: JSON.stringify({ name, target, args: args || {} }) });
    } catch (e) { say("no connection to the dashboard", true); return; }
    let data = {};
    try { data = await r.json(); } catch (e) { /* empty */ }
    state.lastAction = { name, target, status: r.status, data };
    if (r.status === 401) {
      const t = window.prompt("Commands need the rig's token:");
      if (t) { state.token = t; try { localStorage.setItem("pifocus-rig-token", t); } catch (e) { /* */ } return command(name, target, args); }
    }
    say(data.ok ? `${name} sent to ${target} (id ${data.id})` : (data.error || `HTTP ${r.status}`), !data.ok);
  }

  const VERDICT = { in_focus: "ok", near: "near", out_of_focus: "bad", motion_blur: "bad" };

  function card(name) {
    if (state.cards[name]) return state.cards[name];
    const el = $("card").content.firstElementChild.cloneNode(true);
    el.dataset.camera = name;
    el.querySelector(".name").textContent = name;
    el.querySelectorAll("button").forEach((b) => b.addEventListener("click", () => {
      const cmd = b.dataset.cmd;
      command(cmd, name, cmd === "nudge" ? { steps: Number(b.dataset.steps) } : {});
    }));
    $("grid").appendChild(el);
    return (state.cards[name] = { el, thumbSeq: -1 });
  }

  function fmt(v, digits, unit) { return (v === null || v === undefined) ? "–" : Number(v).toFixed(digits) + (unit || ""); }

  function render(rig) {
    $("rig").textContent = "rig " + rig.rig;
    $("rig").className = "chip " + (rig.connected ? "ok" : "err");
    $("broker").textContent = rig.connected ? "broker connected" : "broker unreachable";
    const online = rig.cameras.filter((c) => c.online).length;
    $("count").textContent = `${online}/${rig.cameras.length} cameras online`;
    for (const cam of rig.cameras) {
      const c = card(cam.camera), el = c.el, s = cam.state || {};
      el.classList.toggle("offline", !cam.online);
      const chip = el.querySelector(".verdict");
      chip.textContent = cam.online ? (s.verdict || "–") : "offline";
      chip.className = "chip verdict " + (!cam.online ? "err" : (s.errors && s.errors.length ? "err" : (VERDICT[s.verdict_code] || "wait")));
      const meter = Math.max(0, Math.min(1, s.meter || 0));
      el.querySelector(".fill").style.width = (meter * 100).toFixed(1) + "%";
      el.querySelector(".meter").classList.toggle("ok", !!s.in_focus);
      el.querySelector(".pct").textContent = (meter * 100).toFixed(0) + "%";
      el.querySelector(".line1").textContent = `${fmt(s.fps, 1, " fps")} · lens ${fmt(s.lens_position, 0)} · blur ${fmt(s.blur_px, 2, " px")}`;
      el.querySelector(".line2").textContent = `exp ${s.exposure_us ? (s.exposure_us / 1000).toFixed(2) + " ms" : "–"} · gain ${fmt(s.analogue_gain, 2)} · AF ${(s.autofocus || {}).state || "–"}`;
      el.querySelector(".errors").textContent = (s.errors || []).join("; ");
      if (cam.thumb_seq !== c.thumbSeq && cam.thumb_seq > 0) {
        c.thumbSeq = cam.thumb_seq;
        el.querySelector(".thumb").src = `/api/thumb/${encodeURIComponent(cam.camera)}.jpg?seq=${cam.thumb_seq}`;
      }
    }
    const last = {};
    for (const cmd of rig.commands) {
      for (const [cam, r] of Object.entries(cmd.replies)) last[cam] = `${cmd.name}: ${r.ok ? "ok" : "failed"}${r.error ? " – " + r.error : ""}`;
      if (cmd.name === "capture" && cmd.spread_ms !== null && cmd.spread_ms !== undefined) {
        $("spread").textContent = `last capture: ${Object.keys(cmd.replies).length} cameras, spread ${cmd.spread_ms.toFixed(1)} ms`;
      }
    }
    for (const [cam, text] of Object.entries(last)) if (state.cards[cam]) state.cards[cam].el.querySelector(".reply").textContent = text;
  }

  async function poll() {
    try {
      const r = await fetch("/api/rig", { cache: "no-store" });
      state.rig = await r.json();
      state.polls += 1;
      render(state.rig);
    } catch (e) { say("no connection to the dashboard", true); }
    setTimeout(poll, 1000);
  }

  $("focus-all").addEventListener("click", () => command("autofocus", "all"));
  $("capture-all").addEventListener("click", () => command("capture", "all"));
  poll();
})();
