/* The study's screens and timeline: consent, the resume question, preloading, the jsPsych
 * timeline (keyboard check, full screen, instructions, practice with feedback, repeated
 * until the study's accuracy criterion, blocks with breaks, one plugin-rapid-categorization
 * trial per list row, drawn at the study's size), the posted trial, and completion (with
 * the lab's debriefing). The lab's texts (build-online --consent/--instructions/--debrief)
 * arrive sanitized in study-config.js.
 * Timing and the posted trial's fields come from study-config.js, which build-online
 * writes from experiment/online/config.py (Timing) and validation.py (TRIAL_FIELDS). */
/* global jsPsychHtmlKeyboardResponse, jsPsychFullscreen, jsPsychRapidCategorization */
import STUDY from "./study-config.js";
import { post, retriable, sleep } from "./delivery.js";
import { contact, esc, say } from "./page.js";
import { drawScaled } from "./resample.js";

export const timing = STUDY.timing;

const DEFAULT_CONSENT = "<h2>Consent</h2><p>You will see brief images and say whether each " +
  "shows an animal. It takes about 15 minutes. We record your key presses and response " +
  "times, your platform id if you came from one, basic browser information and, to show " +
  "the images at the same size for everyone, your screen's pixels per cm and how far you " +
  "sit from it. You may stop at any time.</p>";

export function consent() {
  return new Promise((resolve) => {
    say('<div id="rc-consent-text">' + (STUDY.texts.consent || DEFAULT_CONSENT) + "</div>" +
        "<p><button id=\"rc-agree\">I agree</button> " +
        "<button id=\"rc-decline\">I do not agree</button></p>");
    document.getElementById("rc-agree").onclick = () => resolve(true);
    document.getElementById("rc-decline").onclick = () => resolve(false);
  });
}

// An anonymous link has no id to tell people apart, so a browser holding someone's
// unfinished session asks before resuming it.
export function askResume(started) {
  return new Promise((resolve) => {
    const when = started ? " (started " + esc(new Date(started).toLocaleString()) + ")" : "";
    say("<p>This browser holds an unfinished session of this study" + when + ".</p>" +
        "<p><button id=\"rc-resume\">Continue my session</button> " +
        "<button id=\"rc-new\">I am someone else: start a new session</button></p>");
    document.getElementById("rc-resume").onclick = () => resolve(true);
    document.getElementById("rc-new").onclick = () => resolve(false);
  });
}

export function preload(urls) {
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

/** The body posted for list trial ``t`` from the plugin's data ``d``: exactly the fields
 * the server accepts (validation.py TRIAL_FIELDS), each taken from the list's trial, the
 * plugin's data or the moment it ended. */
export function trialBody(t, d) {
  const source = Object.assign({}, d, {
    seq: t.seq, block: t.block, trial: t.trial, practice: t.practice,
    stimulus_id: t.stimulus_id, timestamp_utc: new Date().toISOString(),
  });
  const body = {};
  for (const name of STUDY.trial_fields) {
    if (name in source) body[name] = source[name];
  }
  return body;
}

/** A practice round's accuracy: correct over trials not interrupted, a timeout an error
 * (as the lab runner counts it); 0 when every trial was interrupted. */
export function practiceAccuracy(results) {
  const counted = results.filter((r) => !r.interrupted);
  return counted.length ? counted.filter((r) => r.correct).length / counted.length : 0;
}

/**
 * The jsPsych timeline for the trials still to do (``todo``, list order): instructions (the
 * lab's own when given), the practice rows with feedback (repeated while their accuracy is
 * below the study's criterion, at most its rounds; not when a reload resumed mid-practice),
 * a break screen after the practice and when the block changes; a random fixation in the
 * study's range per trial; every duration in frames of the measured refresh rate; images
 * drawn at ``drawnPx`` device pixels wide (null: their own pixels).
 * onStart(t) and onFinish(t, d) are called around each trial (d: the plugin's data, with
 * practice_round: the round of a practice trial, null for a test trial).
 */
export function buildTimeline({ todo, keys, refreshHz, resumed, drawnPx, nPractice,
                                onStart, onFinish }) {
  const tm = timing;
  const choices = { [keys.animal]: "animal", [keys["non-animal"]]: "non-animal" };
  const period = 1000 / refreshHz;
  const space = (html) => ({
    type: jsPsychHtmlKeyboardResponse, stimulus: html, choices: [" "],
  });
  const instructions = STUDY.texts.instructions ||
    "<p>Each image shows an animal or not.</p><p>Press " + keyHtml(keys.animal) +
    " for <b>animal</b> and " + keyHtml(keys["non-animal"]) + " for <b>no animal</b>, as " +
    "fast and accurately as you can. Keep your eyes on the cross.</p>";
  const timeline = [
    space("<p>Keyboard check: press the <b>space bar</b>.</p>"),
    { timeline: [{ type: jsPsychFullscreen, fullscreen_mode: true,
                   message: "<p>The study runs in full screen.</p>",
                   button_label: "Go full screen" }],
      conditional_function: () => !document.fullscreenElement },
    space((resumed ? "<p>Welcome back.</p>" : "") + '<div id="rc-instructions">' +
          instructions + "</div><p>Press the space bar to start.</p>"),
  ];
  const random = () => crypto.getRandomValues(new Uint32Array(1))[0] / 2 ** 32;
  const round = { n: 1, results: [] };
  const trialNode = (t) => ({
    type: jsPsychRapidCategorization, stimulus: t.url, refresh_hz: refreshHz,
    // a new fixation each time the trial runs (a repeated practice round draws anew)
    fixation_frames: () => Math.round((tm.fixation_min_ms + random() *
                                       (tm.fixation_max_ms - tm.fixation_min_ms)) / period),
    stimulus_frames: Math.round(tm.stimulus_s * refreshHz),
    window_ms: tm.window_ms, choices,
    feedback_frames: Math.round(tm.too_slow_ms / period),
    stimulus_width_px: drawnPx, draw: drawScaled,
    correct_response: t.practice ? t.category : null,
    practice_feedback_frames: t.practice ? Math.round(tm.practice_feedback_ms / period) : 0,
    on_start: () => onStart(t),
    on_finish: (d) => {
      if (d.frames_intended === undefined) return;  // cut off by an aborted study
      d.practice_round = t.practice ? round.n : null;
      if (t.practice) {
        round.results.push({ correct: d.response === t.category, interrupted: d.interrupted });
      }
      onFinish(t, d);
    },
  });
  const practice = todo.filter((t) => t.practice);
  const test = todo.filter((t) => !t.practice);
  const criterion = STUDY.practice.criterion;
  if (practice.length && criterion !== null && practice.length === nPractice) {
    let again = false;
    let accuracy = 0;
    timeline.push({
      timeline: [...practice.map(trialNode), {
        timeline: [space(() => "<p>Practice: " + Math.round(100 * accuracy) + " % correct; " +
                         Math.round(100 * criterion) + " % is needed to go on.</p>" +
                         "<p>Let's practise once more. Press the space bar.</p>")],
        conditional_function: () => {
          accuracy = practiceAccuracy(round.results);
          again = accuracy < criterion && round.n < STUDY.practice.max_rounds;
          return again;
        },
      }],
      loop_function: () => {
        if (!again) return false;
        round.n += 1;
        round.results = [];
        return true;
      },
    });
  } else {
    timeline.push(...practice.map(trialNode));
  }
  if (practice.length && test.length) {
    timeline.push(space("<p>Practice is over; now the real thing.</p>" +
                        "<p>Press the space bar.</p>"));
  }
  let prev = null;
  for (const t of test) {
    if (prev && prev.block !== t.block) {
      timeline.push(space("<p>Time for a break. Press the space bar when you are ready.</p>"));
    }
    prev = t;
    timeline.push(trialNode(t));
  }
  return timeline;
}

function stopWith(r) {
  const why = r.status === 401
    ? "The study server no longer recognises your session (it may have been reset), so " +
      "your answers cannot be saved."
    : "The study server refused to finish your session (" + esc(r.status) + ": " +
      esc((r.data && r.data.error) || "no reason given") + ").";
  say('<p class="rc-error" id="rc-stopped">' + why + " " + contact() +
      " You can close this page.</p>");
}

function showCompletion(data) {
  let html = '<div id="rc-done"><p>Thank you, you are done.</p>';
  if (STUDY.texts.debrief) html += '<div id="rc-debrief">' + STUDY.texts.debrief + "</div>";
  if (data.completion_code) {
    html += '<p>Your completion code: <b id="rc-code">' + esc(data.completion_code) +
      "</b></p>";
  }
  if (data.completion_url) {
    html += '<p><a id="rc-return" href="' + esc(data.completion_url) +
      '">Return to the study site</a></p>';
    setTimeout(() => { location.href = data.completion_url; }, 5000);
  }
  say(html + "</div>");
}

/**
 * Deliver what is queued, then ask for the completion code. Retries only what can heal
 * (network, 5xx, 429), saying so; any other answer stops with what to do, instead of
 * "Saving…" for ever.
 */
export async function finishStudy(delivery) {
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  say("<p>Saving your answers…</p>");
  for (let wait = 1000; ; wait = Math.min(wait * 2, 8000)) {
    await delivery.flush();
    if (delivery.authLost) return stopWith(delivery.authLost);
    const state = delivery.state;
    if (!state.queue.length) {
      let r;
      try { r = await post("api/complete", {}, state.token); } catch { r = { status: 0 }; }
      if (r.status === 200) {
        state.completed = true;
        delivery.save();
        return showCompletion(r.data);
      }
      if (r.status === 409 && r.data && r.data.missing) {
        say('<p class="rc-error" id="rc-stopped">Some answers did not reach the server (' +
            r.data.missing.length + "). " + contact() + "</p>");
        return;
      }
      if (!retriable(r.status)) return stopWith(r);
    }
    say("<p>Saving your answers… The study server cannot be reached right now " +
        (state.queue.length ? "(" + state.queue.length + " answers waiting)" : "") +
        "; please keep this page open, it keeps trying.</p>");
    await sleep(wait);
  }
}
