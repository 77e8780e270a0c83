/* The study page: browser checks, consent, list assignment, preload, full screen, practice,
 * blocks with breaks, and delivery of every trial the moment it ends. Unsent trials live in
 * localStorage and are retried until the server has them, so a reload or a server restart
 * loses nothing. */
(function () {
  "use strict";

  const params = Object.fromEntries(new URLSearchParams(location.search));
  const who = params.PROLIFIC_PID || params.workerId || "anonymous";
  const STORE_KEY = "rc-study:" + who;
  const message = document.getElementById("rc-message");
  const say = (html) => { message.style.display = ""; message.innerHTML = html; };
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");

  // {token, queue: [trial payloads not yet acknowledged], rejected: [...]}
  const load = () => {
    try { return JSON.parse(localStorage.getItem(STORE_KEY)) || {}; } catch (e) { return {}; }
  };
  let state = Object.assign({ token: null, queue: [], rejected: [] }, load());
  const save = () => localStorage.setItem(STORE_KEY, JSON.stringify(state));

  async function post(path, body, token) {
    const headers = { "content-type": "application/json" };
    if (token) headers.authorization = "Bearer " + token;
    const r = await fetch(path, { method: "POST", headers, body: JSON.stringify(body || {}) });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    return { status: r.status, data };
  }

  // ---- delivery: oldest first; 201 stored, 409 already stored; otherwise retry later
  let flushing = false;
  let retryMs = 500;
  let retryTimer = null;
  async function flush() {
    if (flushing) return;
    flushing = true;
    try {
      while (state.queue.length) {
        let r;
        try {
          r = await post("api/trials", state.queue[0], state.token);
        } catch (e) {
          r = { status: 0 };
        }
        if (r.status === 201 || r.status === 409) {
          state.queue.shift();
          save();
          retryMs = 500;
        } else if (r.status === 0 || r.status >= 500 || r.status === 429) {
          clearTimeout(retryTimer);
          retryTimer = setTimeout(flush, retryMs);
          retryMs = Math.min(retryMs * 2, 4000);
          return;
        } else {
          // the server refused it for good: keep it aside for the researchers, go on
          state.rejected.push({ status: r.status, reply: r.data, trial: state.queue.shift() });
          save();
        }
      }
    } finally {
      flushing = false;
    }
  }
  window.addEventListener("online", flush);

  // ---- browser checks
  function measureRefresh(n) {
    return new Promise((resolve) => {
      const stamps = [];
      const step = (ts) => {
        stamps.push(ts);
        if (stamps.length < n) return requestAnimationFrame(step);
        const d = stamps.slice(10).map((x, i, a) => (i ? x - a[i - 1] : null)).slice(1);
        d.sort((a, b) => a - b);
        resolve(1000 / d[Math.floor(d.length / 2)]);
      };
      requestAnimationFrame(step);
    });
  }

  async function startSession(refreshHz) {
    const client = {
      user_agent: navigator.userAgent.slice(0, 300), dpr: window.devicePixelRatio || 1,
      screen: [screen.width, screen.height], window: [innerWidth, innerHeight],
      refresh_hz: refreshHz,
    };
    if (state.token) {
      const r = await post("api/session", { token: state.token });
      if (r.status === 200) return r.data;
      if (r.status !== 401) throw new Error("session: " + r.status + " " + JSON.stringify(r.data));
      state = { token: null, queue: [], rejected: [] };  // a token this server never issued
      save();
    }
    const r = await post("api/session", { params, client });
    if (r.status !== 201) {
      throw new Error((r.data && r.data.error) || "the server refused to start (" + r.status + ")");
    }
    state.token = r.data.token;
    save();
    return r.data;
  }

  function preload(urls) {
    let done = 0;
    const images = urls.map((u) => {
      const img = new Image();
      img.src = u;
      return img.decode().then(() => {
        done += 1;
        say("<p>Loading images… " + done + " / " + urls.length + "</p>");
        return img;
      });
    });
    return Promise.all(images);
  }

  const keyHtml = (k) => '<span class="rc-key">' + esc(k.toUpperCase()) + "</span>";

  function checksPass(refreshHz, dpr, limits) {
    if (innerWidth * dpr < limits.min_window_px || innerHeight * dpr < limits.min_window_px) {
      say("<p>Your browser window is too small to show the images at full size. " +
          "Please enlarge it and reload this page.</p>");
      return false;
    }
    if (!(refreshHz >= limits.refresh_min_hz && refreshHz <= limits.refresh_max_hz)) {
      say("<p>Your screen's refresh rate (" + refreshHz.toFixed(1) + " Hz) could not be " +
          "measured reliably. Please close other tabs and reload, or use another browser.</p>");
      return false;
    }
    return true;
  }

  async function finishStudy() {
    say("<p>Saving your answers…</p>");
    for (;;) {
      await flush();
      if (!state.queue.length) {
        let r;
        try { r = await post("api/complete", {}, state.token); } catch (e) { r = { status: 0 }; }
        if (r.status === 200) return showCompletion(r.data);
        if (r.status === 409 && r.data && r.data.missing) {
          say("<p>Some answers did not reach the server (" + r.data.missing.length +
              "). Please contact the researchers.</p>");
          return;
        }
      }
      await new Promise((res) => setTimeout(res, 1000));
    }
  }

  function showCompletion(data) {
    let html = '<div id="rc-done"><p>Thank you, you are done.</p>';
    if (data.completion_code) {
      html += '<p>Your completion code: <b id="rc-code">' + esc(data.completion_code) + "</b></p>";
    }
    if (data.completion_url) {
      html += '<p><a id="rc-return" href="' + esc(data.completion_url) + '">Return to the study site</a></p>';
      setTimeout(() => { location.href = data.completion_url; }, 5000);
    }
    say(html + "</div>");
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  }

  async function run() {
    say("<p>Checking your browser…</p>");
    const refreshHz = await measureRefresh(70);
    const dpr = window.devicePixelRatio || 1;
    // checked before a list is assigned, so failing browsers do not unbalance the lists;
    // the limits are Timing's defaults (config.py) and are checked again with the study's own
    if (!checksPass(refreshHz, dpr, { min_window_px: 256, refresh_min_hz: 48, refresh_max_hz: 250 })) {
      return;
    }
    if (!state.token) {
      const agreed = await consent();
      if (!agreed) {
        say("<p>You chose not to take part. You can close this page.</p>");
        return;
      }
    }
    let session;
    try {
      session = await startSession(refreshHz);
    } catch (e) {
      say('<p class="rc-error">' + esc(e.message) + "</p>");
      return;
    }
    const cfg = session.config;
    const tm = cfg.timing;
    if (!checksPass(refreshHz, dpr, tm)) return;
    window.rcStudy = { session, refreshHz, state: () => state };
    flush();
    const pending = new Set(state.queue.map((q) => q.seq));
    const done = new Set(session.done);
    const todo = session.trials.filter((t) => !done.has(t.seq) && !pending.has(t.seq));
    if (session.completed || !todo.length) return finishStudy();

    say("<p>Loading images…</p>");
    try {
      await preload(todo.map((t) => t.url));
    } catch (e) {
      say('<p class="rc-error">Some images could not be loaded. Please reload the page.</p>');
      return;
    }
    message.style.display = "none";
    const keys = cfg.keys;
    const choices = { [keys.animal]: "animal", [keys["non-animal"]]: "non-animal" };
    const period = 1000 / refreshHz;
    const jsPsych = initJsPsych({ display_element: "rc-jspsych", on_finish: finishStudy });
    const resumed = done.size + pending.size > 0;
    const space = (html) => ({
      type: jsPsychHtmlKeyboardResponse, stimulus: html, choices: [" "],
    });
    const timeline = [
      space("<p>Keyboard check: press the <b>space bar</b>.</p>"),
      { type: jsPsychFullscreen, fullscreen_mode: true,
        message: "<p>The study runs in full screen.</p>", button_label: "Go full screen" },
      space("<p>" + (resumed ? "Welcome back. " : "") + "Each image shows an animal or not.</p>" +
            "<p>Press " + keyHtml(keys.animal) + " for <b>animal</b> and " +
            keyHtml(keys["non-animal"]) + " for <b>no animal</b>, as fast and accurately as " +
            "you can. Keep your eyes on the cross.</p><p>Press the space bar to start.</p>"),
    ];
    let prev = null;
    const random = () => crypto.getRandomValues(new Uint32Array(1))[0] / 2 ** 32;
    for (const t of todo) {
      if (prev && prev.practice && !t.practice) {
        timeline.push(space("<p>Practice is over; now the real thing.</p><p>Press the space bar.</p>"));
      } else if (prev && !t.practice && prev.block !== t.block) {
        timeline.push(space("<p>Time for a break. Press the space bar when you are ready.</p>"));
      }
      prev = t;
      const fixMs = tm.fixation_min_ms + random() * (tm.fixation_max_ms - tm.fixation_min_ms);
      timeline.push({
        type: jsPsychRapidCategorization, stimulus: t.url, refresh_hz: refreshHz,
        fixation_frames: Math.round(fixMs / period),
        stimulus_frames: Math.round(tm.stimulus_s * refreshHz),
        window_ms: tm.stimulus_s * 1000 + tm.response_extra_ms, choices,
        feedback_frames: Math.round(tm.too_slow_ms / period),
        on_start: () => { window.rcStudy.currentSeq = t.seq; },
        on_finish: (d) => {
          state.queue.push({
            seq: t.seq, block: t.block, trial: t.trial, practice: t.practice,
            stimulus_id: t.stimulus_id, response: d.response, key: d.key, rt_ms: d.rt_ms,
            timeout: d.timeout, fixation_ms: d.fixation_ms, frames_intended: d.frames_intended,
            frames_shown: d.frames_shown, refresh_hz: d.refresh_hz,
            dropped_frames: d.dropped_frames, timestamp_utc: new Date().toISOString(),
            timing: d.timing,
          });
          save();
          window.rcStudy.lastFinished = t.seq;
          flush();
        },
      });
    }
    await jsPsych.run(timeline);
  }

  function consent() {
    return new Promise((resolve) => {
      say("<h2>Consent</h2><p>You will see brief images and say whether each shows an animal. " +
          "It takes about 15 minutes. We record your key presses and response times, your " +
          "platform id if you came from one, and basic browser information. You may stop " +
          "at any time.</p><p><button id=\"rc-agree\">I agree</button> " +
          "<button id=\"rc-decline\">I do not agree</button></p>");
      document.getElementById("rc-agree").onclick = () => resolve(true);
      document.getElementById("rc-decline").onclick = () => resolve(false);
    });
  }

  run().catch((e) => say('<p class="rc-error">Something went wrong: ' + esc(e.message) + "</p>"));
})();
