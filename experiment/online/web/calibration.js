/* The virtual chinrest (Li et al. 2020, Scientific Reports; @jspsych/plugin-virtual-chinrest)
 * before a list is assigned: full screen, then the card (the participant resizes an on-screen
 * card to a real ID-1 card, 85.60 × 53.98 mm: CSS px per cm = its width in px / 8.56) and the
 * blind spot (the plugin's distance: the mean offset of the red ball from the square when it
 * vanished, in mm at the card's px/mm, / tan 13.5°). Then the study's checks: px/cm and the
 * distance within the study's bounds, and the image at the study's angle fitting the screen.
 * Limits and the angle come from study-config.js (experiment/online/config.py). */
/* global initJsPsych, jsPsychFullscreen, jsPsychVirtualChinrest */
import STUDY from "./study-config.js";
import { message } from "./page.js";
import { cardPxPerCm, planSize, sizeCm } from "./visual-angle.js";

const limits = STUDY.calibration;

/** Run the chinrest (and full screen) in its own jsPsych -> the plugin's data. */
export async function runChinrest() {
  let data = null;
  message.replaceChildren();
  message.style.display = "none";
  const jsPsych = initJsPsych({ display_element: "rc-jspsych" });
  const timeline = [];
  if (!document.fullscreenElement) {
    timeline.push({ type: jsPsychFullscreen, fullscreen_mode: true,
                    message: "<p>The study runs in full screen.</p>",
                    button_label: "Go full screen" });
  }
  timeline.push({
    type: jsPsychVirtualChinrest,
    blindspot_reps: limits.blindspot_reps,
    item_width_mm: limits.card_width_mm,
    item_height_mm: limits.card_height_mm,
    resize_units: "none",
    on_finish: (d) => { data = d; },
  });
  // jsPsych hears keys on its display element: the chinrest's buttons take the focus and
  // vanish with their screen, so the blind spot's space bar would go to the body unheard
  const container = document.getElementById("rc-jspsych");
  const keepFocus = new MutationObserver(() => {
    if (!container.contains(document.activeElement)) container.focus({ preventScroll: true });
  });
  keepFocus.observe(container, { childList: true, subtree: true });
  try {
    await jsPsych.run(timeline);
  } finally {
    keepFocus.disconnect();
  }
  container.replaceChildren();
  return data;
}

const fmt = (x, digits) => Number(x).toFixed(digits);

/**
 * The study's verdict on a chinrest result: {calibration} to start with (what the server
 * stores: card_width_px, px_per_cm, distance_cm, dpr, drawn_px), or {reason, detail, html}
 * when the participant must be stopped.
 */
export function judge(data, dpr, windowCss) {
  const cardPx = data.item_width_px;
  const pxPerCm = cardPxPerCm(cardPx);
  const distanceCm = data.view_dist_mm / 10;
  const detail = { card_width_px: cardPx, px_per_cm: pxPerCm, distance_cm: distanceCm, dpr };
  const plausible = pxPerCm >= limits.px_per_cm_min && pxPerCm <= limits.px_per_cm_max &&
    distanceCm >= limits.distance_cm_min && distanceCm <= limits.distance_cm_max;
  if (!plausible) {
    return {
      reason: "implausible_calibration", detail,
      html: "<p>The measurements (" + fmt(pxPerCm, 1) + " screen pixels per cm, " +
        fmt(distanceCm, 0) + " cm from the screen) are outside what this study can use (" +
        limits.px_per_cm_min + "–" + limits.px_per_cm_max + " pixels per cm, " +
        limits.distance_cm_min + "–" + limits.distance_cm_max + " cm), so the study " +
        "cannot go on with this set-up. Thank you for your time; you can close this page.</p>",
    };
  }
  const size = planSize(STUDY.stimulus_deg, distanceCm, pxPerCm, dpr);
  Object.assign(detail, { drawn_px: size.drawnPx, window: windowCss });
  // square images (paradigm §2): the width must fit both ways
  if (size.cssPx > windowCss[0] || size.cssPx > windowCss[1]) {
    return {
      reason: "screen_too_small", detail,
      html: "<p>At " + fmt(distanceCm, 0) + " cm from your screen the images must be " +
        fmt(sizeCm(STUDY.stimulus_deg, distanceCm), 1) + " cm wide (" +
        STUDY.stimulus_deg + "° of visual angle), more than your screen can show, so the " +
        "study cannot go on with this set-up. Thank you for your time; you can close this " +
        "page.</p>",
    };
  }
  return {
    calibration: { card_width_px: cardPx, px_per_cm: pxPerCm, distance_cm: distanceCm, dpr,
                   drawn_px: size.drawnPx },
  };
}
