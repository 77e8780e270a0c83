/* The study page: browser checks (checks.js), consent and the choice of session, the
 * virtual chinrest and the study's size checks (calibration.js), list assignment, preload,
 * then the timeline (timeline.js); every trial is queued the moment it ends and delivered
 * (delivery.js), so a reload or a server restart loses nothing. A participant who declines
 * or cannot be calibrated is counted (api/screen-out) and never assigned a list. */
/* global initJsPsych */
import STUDY from "./study-config.js";
import { judge, runChinrest } from "./calibration.js";
import { browserProblem, measureRefresh } from "./checks.js";
import { createDelivery, post, sleep } from "./delivery.js";
import { esc, message, params, say, who } from "./page.js";
import {
  askResume, buildTimeline, consent, finishStudy, preload, timing, trialBody,
} from "./timeline.js";

let jsPsych = null;

// {nonce, token, started, completed, calibration (the chinrest's, sent with the start),
//  queue: [trial payloads not yet acknowledged],
//  rejected: [the last few the server refused; it keeps them all]}
const delivery = createDelivery({
  storeKey: "rc-study:" + (who || "anonymous"),
  fresh: () => ({ nonce: null, token: null, started: null, completed: false,
                  calibration: null, queue: [], rejected: [] }),
  endpoint: "api/trials",
  idField: "seq",
  server: "study",
  // the server does not know this session (e.g. its database was replaced): stop the study
  onAuthLost: () => { if (jsPsych) jsPsych.abortExperiment(); },
});

// A browser holding someone's unfinished anonymous session asks before resuming it; a
// finished one is never resumed. Answers the previous person left unsent stay in this
// browser under rc-study:unsent:<time>.
async function chooseAnonymousSession() {
  const state = delivery.state;
  if (who || !(state.token || state.nonce)) return;
  if (!state.completed && await askResume(state.started)) return;
  if (state.queue.length) {
    try {
      localStorage.setItem("rc-study:unsent:" + Date.now(), JSON.stringify(state));
    } catch { /* full storage: nothing more can be done here */ }
  }
  delivery.reset();
}

/** Count this participant as stopped before a list (the server keeps no session). */
async function screenOut(reason, detail, client) {
  for (let attempt = 0; attempt < 4; attempt += 1) {
    try {
      const r = await post("api/screen-out", { reason, detail, client, params });
      if (r.status === 201 || (r.status >= 400 && r.status < 500)) return r.status;
    } catch { /* network: try again */ }
    await sleep(500 * 2 ** attempt);
  }
  return 0;
}

// build-online --background, with black or white text on it
for (const el of [document.documentElement, document.body]) {
  el.style.background = STUDY.background;
  el.style.color = STUDY.text_colour;
}

async function run() {
  say("<p>Checking your browser…</p>");
  const refreshHz = await measureRefresh(70);
  const dpr = window.devicePixelRatio || 1;
  // checked before a list is assigned, so failing browsers do not unbalance the lists
  const problem = browserProblem(refreshHz, dpr, timing);
  if (problem) return say(problem);
  await chooseAnonymousSession();
  const client = () => ({
    user_agent: navigator.userAgent.slice(0, 300), dpr,
    screen: [screen.width, screen.height], window: [innerWidth, innerHeight],
    refresh_hz: refreshHz,
  });
  window.rcStudy = { refreshHz, state: () => delivery.state };
  if (!delivery.state.token && !delivery.state.nonce) {
    const agreed = await consent();
    if (!agreed) {
      await screenOut("declined", {}, client());
      say('<p id="rc-declined">You chose not to take part. You can close this page.</p>');
      return;
    }
    if (STUDY.stimulus_deg !== null) {
      const data = await runChinrest();
      window.rcStudy.chinrest = data;
      const verdict = judge(data, window.devicePixelRatio || 1, [innerWidth, innerHeight]);
      window.rcStudy.verdict = verdict;
      if (!verdict.calibration) {
        if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
        await screenOut(verdict.reason, verdict.detail, client());
        say('<div id="rc-screened-out">' + verdict.html + "</div>");
        return;
      }
      delivery.state.calibration = verdict.calibration;
      delivery.save();
    }
  }
  let session;
  try {
    const extra = delivery.state.calibration ? { calibration: delivery.state.calibration } : {};
    session = await delivery.startSession(params, client(), say, extra);
  } catch (e) {
    say('<p class="rc-error">' + esc(e.message) + "</p>");
    return;
  }
  Object.assign(window.rcStudy, { session, storageOk: () => delivery.storageOk });
  delivery.flush();
  const pending = new Set(delivery.state.queue.map((q) => q.seq));
  const done = new Set(session.done);
  const todo = session.trials.filter((t) => !done.has(t.seq) && !pending.has(t.seq));
  if (session.completed || !todo.length) return finishStudy(delivery);

  say("<p>Loading images…</p>");
  try {
    await preload(todo.map((t) => t.url));
  } catch {
    say('<p class="rc-error">Some images could not be loaded. Please reload the page.</p>');
    return;
  }
  message.style.display = "none";
  jsPsych = initJsPsych({ display_element: "rc-jspsych", on_finish: () => finishStudy(delivery) });
  const timeline = buildTimeline({
    todo, keys: session.config.keys, refreshHz, resumed: done.size + pending.size > 0,
    // the session's size in device pixels (from its calibration; null: native pixels)
    drawnPx: session.calibration ? session.calibration.drawn_px : null,
    nPractice: session.trials.filter((t) => t.practice).length,
    onStart: (t) => { window.rcStudy.currentSeq = t.seq; },
    onFinish: (t, d) => {
      delivery.enqueue(trialBody(t, d));
      window.rcStudy.lastFinished = t.seq;
      delivery.flush();
    },
  });
  await jsPsych.run(timeline);
}

run().catch((e) => say('<p class="rc-error">Something went wrong: ' + esc(e.message) + "</p>"));
