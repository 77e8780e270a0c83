/* The study page: browser checks (checks.js), consent and the choice of session, list
 * assignment, preload, then the timeline (timeline.js); every trial is queued the moment it
 * ends and delivered (delivery.js), so a reload or a server restart loses nothing. */
/* global initJsPsych */
import { browserProblem, measureRefresh } from "./checks.js";
import { createDelivery } from "./delivery.js";
import { esc, message, params, say, who } from "./page.js";
import {
  askResume, buildTimeline, consent, finishStudy, preload, timing, trialBody,
} from "./timeline.js";

let jsPsych = null;

// {nonce, token, started, completed, queue: [trial payloads not yet acknowledged],
//  rejected: [the last few the server refused; it keeps them all]}
const delivery = createDelivery({
  storeKey: "rc-study:" + (who || "anonymous"),
  fresh: () => ({ nonce: null, token: null, started: null, completed: false,
                  queue: [], rejected: [] }),
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

async function run() {
  say("<p>Checking your browser…</p>");
  const refreshHz = await measureRefresh(70);
  const dpr = window.devicePixelRatio || 1;
  // checked before a list is assigned, so failing browsers do not unbalance the lists
  const problem = browserProblem(refreshHz, dpr, timing);
  if (problem) return say(problem);
  await chooseAnonymousSession();
  if (!delivery.state.token && !delivery.state.nonce) {
    const agreed = await consent();
    if (!agreed) {
      say("<p>You chose not to take part. You can close this page.</p>");
      return;
    }
  }
  const client = {
    user_agent: navigator.userAgent.slice(0, 300), dpr,
    screen: [screen.width, screen.height], window: [innerWidth, innerHeight],
    refresh_hz: refreshHz,
  };
  let session;
  try {
    session = await delivery.startSession(params, client, say);
  } catch (e) {
    say('<p class="rc-error">' + esc(e.message) + "</p>");
    return;
  }
  window.rcStudy = {
    session, refreshHz, state: () => delivery.state, storageOk: () => delivery.storageOk,
  };
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
