/* The study page: browser checks, consent, list assignment, preload, full screen, practice,
 * blocks with breaks, and delivery of every trial the moment it ends. Unsent trials live in
 * localStorage and are retried until the server has them, so a reload or a server restart
 * loses nothing. */
(function () {
  "use strict";

  const params = Object.fromEntries(new URLSearchParams(location.search));
  const who = params.PROLIFIC_PID || params.workerId || null;
  const STORE_KEY = "rc-study:" + (who || "anonymous");
  const message = document.getElementById("rc-message");
  const say = (html) => { message.style.display = ""; message.innerHTML = html; };
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
  const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
  const randomHex = (n) => Array.from(crypto.getRandomValues(new Uint8Array(n)),
                                      (b) => b.toString(16).padStart(2, "0")).join("");

  // {nonce, token, started, completed, queue: [trial payloads not yet acknowledged],
  //  rejected: [the last few the server refused; it keeps them all]}
  const fresh = () => ({ nonce: null, token: null, started: null, completed: false,
                         queue: [], rejected: [] });
  const load = () => {
    try { return JSON.parse(localStorage.getItem(STORE_KEY)) || {}; } catch (e) { return {}; }
  };
  let state = Object.assign(fresh(), load());
  // Storage can be full or switched off: the study then goes on with the state in memory
  // (a reload cannot resume, but nothing stops the participant from finishing).
  let storageOk = true;
  const save = () => {
    try {
      localStorage.setItem(STORE_KEY, JSON.stringify(state));
      storageOk = true;
    } catch (e) {
      storageOk = false;
    }
  };
  let jsPsych = null;
  let authLost = null;  // the server's reply when it no longer knows this session's token

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
        } else if (r.status === 401) {
          // the server does not know this session (e.g. its database was replaced): nothing
          // sent now can be stored; keep the queue and stop the study with an explanation
          authLost = r;
          if (jsPsych) jsPsych.abortExperiment();
          return;
        } else {
          // refused for good (the server keeps it, flagged, for the researchers): go on
          state.rejected = state.rejected.slice(-19).concat(
            [{ status: r.status, reply: r.data, seq: state.queue[0].seq }]);
          state.queue.shift();
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
    // Network errors, 5xx and 429 are retried. A new session is asked for with a nonce kept
    // (stored) before the first request, so a retry after a lost reply gets the session that
    // request made instead of "already started in another browser".
    for (let attempt = 0, wait = 500; ; attempt += 1, wait = Math.min(wait * 2, 8000)) {
      if (!state.token && !state.nonce) {
        state.nonce = randomHex(24);
        state.started = new Date().toISOString();
        save();
      }
      let r;
      try {
        r = state.token ? await post("api/session", { token: state.token })
                        : await post("api/session", { params, client, nonce: state.nonce });
      } catch (e) {
        r = { status: 0, data: null };
      }
      if (r.status === 200 || (r.status === 201 && !state.token)) {
        state.token = r.data.token;
        save();
        return r.data;
      }
      if (r.status === 401 && state.token) {
        state = fresh();  // a token this server never issued (a new database): start anew
        save();
        continue;
      }
      if (!(r.status === 0 || r.status >= 500 || r.status === 429)) {
        throw new Error((r.data && r.data.error) || "the server refused to start (" + r.status + ")");
      }
      if (attempt >= 6) {
        throw new Error("The study server cannot be reached. Please check your internet " +
                        "connection and reload this page.");
      }
      say("<p>Connecting to the study server…</p>");
      await sleep(wait);
    }
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

  const contact = () => "Please contact the researchers" +
    (who ? " and give them your id <b>" + esc(who) + "</b>" : "") + ".";

  function stopWith(r) {
    const why = r.status === 401
      ? "The study server no longer recognises your session (it may have been reset), so " +
        "your answers cannot be saved."
      : "The study server refused to finish your session (" + esc(r.status) + ": " +
        esc((r.data && r.data.error) || "no reason given") + ").";
    say('<p class="rc-error" id="rc-stopped">' + why + " " + contact() +
        " You can close this page.</p>");
  }

  // Retries only what can heal (network, 5xx, 429), saying so; any other answer stops with
  // what to do, instead of "Saving…" for ever.
  async function finishStudy() {
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    say("<p>Saving your answers…</p>");
    for (let wait = 1000; ; wait = Math.min(wait * 2, 8000)) {
      await flush();
      if (authLost) return stopWith(authLost);
      let r = { status: 0 };
      if (!state.queue.length) {
        try { r = await post("api/complete", {}, state.token); } catch (e) { r = { status: 0 }; }
        if (r.status === 200) {
          state.completed = true;
          save();
          return showCompletion(r.data);
        }
        if (r.status === 409 && r.data && r.data.missing) {
          say('<p class="rc-error" id="rc-stopped">Some answers did not reach the server (' +
              r.data.missing.length + "). " + contact() + "</p>");
          return;
        }
        if (!(r.status === 0 || r.status >= 500 || r.status === 429)) return stopWith(r);
      }
      say("<p>Saving your answers… The study server cannot be reached right now " +
          (state.queue.length ? "(" + state.queue.length + " answers waiting)" : "") +
          "; please keep this page open, it keeps trying.</p>");
      await sleep(wait);
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
  }

  // An anonymous link has no id to tell people apart, so a browser holding someone's
  // unfinished session asks before resuming it; a finished one is never resumed.
  function askResume() {
    return new Promise((resolve) => {
      const when = state.started ? " (started " + esc(new Date(state.started).toLocaleString()) +
        ")" : "";
      say("<p>This browser holds an unfinished session of this study" + when + ".</p>" +
          "<p><button id=\"rc-resume\">Continue my session</button> " +
          "<button id=\"rc-new\">I am someone else: start a new session</button></p>");
      document.getElementById("rc-resume").onclick = () => resolve(true);
      document.getElementById("rc-new").onclick = () => resolve(false);
    });
  }

  async function chooseAnonymousSession() {
    if (who || !(state.token || state.nonce)) return;
    if (!state.completed && await askResume()) return;
    if (state.queue.length) {  // someone's answers never delivered: keep them in this browser
      try {
        localStorage.setItem("rc-study:unsent:" + Date.now(), JSON.stringify(state));
      } catch (e) { /* full storage: nothing more can be done here */ }
    }
    state = fresh();
    save();
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
    await chooseAnonymousSession();
    if (!state.token && !state.nonce) {
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
    window.rcStudy = { session, refreshHz, state: () => state, storageOk: () => storageOk };
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
    jsPsych = initJsPsych({ display_element: "rc-jspsych", on_finish: finishStudy });
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
          if (d.frames_intended === undefined) return;  // cut off by an aborted study
          state.queue.push({
            seq: t.seq, block: t.block, trial: t.trial, practice: t.practice,
            stimulus_id: t.stimulus_id, response: d.response, key: d.key, rt_ms: d.rt_ms,
            timeout: d.timeout, fixation_ms: d.fixation_ms, frames_intended: d.frames_intended,
            frames_shown: d.frames_shown, refresh_hz: d.refresh_hz,
            dropped_frames: d.dropped_frames, timestamp_utc: new Date().toISOString(),
            timing: d.timing, interrupted: d.interrupted,
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
