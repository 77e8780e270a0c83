/* jsPsych plugin: one rapid-categorization trial, every duration counted in display frames.
 * Fixation, image and response window are driven by requestAnimationFrame; a change made in
 * a rAF callback is presented in that frame, so onsets are the callbacks' frame timestamps.
 * Elapsed frames are computed from timestamps, so a skipped callback cannot stretch the image. */
var jsPsychRapidCategorization = (function (jspsych) {
  "use strict";

  const P = jspsych.ParameterType;
  const info = {
    name: "rapid-categorization",
    version: "0.1.0",
    parameters: {
      /** Image URL; preload it so the decode below is instant. */
      stimulus: { type: P.IMAGE, default: undefined },
      /** Refresh rate measured on this screen at the start (Hz). */
      refresh_hz: { type: P.FLOAT, default: undefined },
      /** Fixation length in frames. */
      fixation_frames: { type: P.INT, default: undefined },
      /** Image length in frames: round(0.400 × refresh). */
      stimulus_frames: { type: P.INT, default: undefined },
      /** Response window from image onset, ms (SPEC: 550). */
      window_ms: { type: P.FLOAT, default: 550 },
      /** Map of key -> response label, e.g. {f: "animal", j: "non-animal"}. */
      choices: { type: P.OBJECT, default: undefined },
      /** "Too slow" feedback length in frames. */
      feedback_frames: { type: P.INT, default: 60 },
      feedback_html: { type: P.HTML_STRING, default: "Too slow!" },
    },
    data: {
      response: { type: P.STRING }, key: { type: P.STRING }, rt_ms: { type: P.FLOAT },
      timeout: { type: P.INT }, fixation_ms: { type: P.FLOAT },
      frames_intended: { type: P.INT }, frames_shown: { type: P.INT },
      refresh_hz: { type: P.FLOAT }, dropped_frames: { type: P.INT },
      timing: { type: P.OBJECT },
    },
  };

  class RapidCategorizationPlugin {
    constructor(jsPsych) {
      this.jsPsych = jsPsych;
    }

    trial(display_element, trial) {
      const period = 1000 / trial.refresh_hz;
      const windowFrames = Math.round(trial.window_ms / period);
      display_element.innerHTML =
        '<div id="rc-stage" data-phase="loading">' +
        '<div id="rc-fixation" class="rc-layer">+</div>' +
        '<img id="rc-stimulus" class="rc-layer" alt="">' +
        '<div id="rc-feedback" class="rc-layer"></div></div>';
      const stage = display_element.querySelector("#rc-stage");
      const fixation = display_element.querySelector("#rc-fixation");
      const img = display_element.querySelector("#rc-stimulus");
      const feedback = display_element.querySelector("#rc-feedback");
      feedback.innerHTML = trial.feedback_html;
      fixation.style.visibility = "hidden";
      img.style.visibility = "hidden";
      feedback.style.visibility = "hidden";

      const t = { fixation: null, onset: null, offset: null, feedback: null, key: null, end: null };
      let phase = "loading";
      let response = null;
      let key = null;
      let lateKey = null;
      let earlyKeys = 0;
      let last = null;
      let dropped = 0;
      const frames = (ts, from) => Math.round((ts - from) / period);

      const setPhase = (p) => {
        phase = p;
        stage.dataset.phase = p;
      };

      const onKey = (e) => {
        const k = e.key.toLowerCase();
        if (e.repeat || !(k in trial.choices)) return;
        if (phase === "fixation") {
          earlyKeys += 1;
          return;
        }
        if (response !== null || t.onset === null || phase === "feedback" || phase === "done") return;
        // event.timeStamp shares performance.now()'s clock and marks when the key went down
        const rt = e.timeStamp - t.onset;
        if (rt > trial.window_ms) {
          lateKey = rt;
          return;
        }
        response = trial.choices[k];
        key = k;
        t.key = e.timeStamp;
      };

      const finish = (ts) => {
        t.end = ts;
        setPhase("done");
        document.removeEventListener("keydown", onKey);
        const timeout = response === null ? 1 : 0;
        const r3 = (x) => (x === null ? null : Math.round(x * 1000) / 1000);
        this.jsPsych.finishTrial({
          response: timeout ? "none" : response,
          key: timeout ? null : key,
          rt_ms: timeout ? null : r3(t.key - t.onset),
          timeout: timeout,
          fixation_ms: r3(t.onset - t.fixation),
          frames_intended: trial.stimulus_frames,
          frames_shown: frames(t.offset, t.onset),
          refresh_hz: trial.refresh_hz,
          dropped_frames: dropped,
          timing: {
            t_fixation: r3(t.fixation), t_onset: r3(t.onset), t_offset: r3(t.offset),
            t_key: r3(t.key), t_end: r3(t.end), stimulus_ms: r3(t.offset - t.onset),
            fixation_frames: trial.fixation_frames, early_keys: earlyKeys, late_key_rt: r3(lateKey),
          },
        });
      };

      const onFrame = (ts) => {
        if (last !== null) dropped += Math.max(0, frames(ts, last) - 1);
        last = ts;
        if (phase === "start") {
          fixation.style.visibility = "visible";
          t.fixation = ts;
          setPhase("fixation");
        } else if (phase === "fixation" && frames(ts, t.fixation) >= trial.fixation_frames) {
          fixation.style.visibility = "hidden";
          img.style.visibility = "visible";
          t.onset = ts;
          setPhase("stimulus");
        } else if (phase === "stimulus" && frames(ts, t.onset) >= trial.stimulus_frames) {
          img.style.visibility = "hidden";
          t.offset = ts;
          setPhase("response");
        }
        if (phase === "response") {
          if (response !== null) return finish(ts);
          if (frames(ts, t.onset) >= windowFrames) {
            feedback.style.visibility = "visible";
            t.feedback = ts;
            setPhase("feedback");
          }
        } else if (phase === "feedback" && frames(ts, t.feedback) >= trial.feedback_frames) {
          feedback.style.visibility = "hidden";
          return finish(ts);
        }
        requestAnimationFrame(onFrame);
      };

      img.src = trial.stimulus;
      // native size: one image pixel per device pixel
      const dpr = window.devicePixelRatio || 1;
      img.decode().then(
        () => {
          img.style.width = img.naturalWidth / dpr + "px";
          img.style.height = img.naturalHeight / dpr + "px";
          document.addEventListener("keydown", onKey);
          setPhase("start");
          requestAnimationFrame(onFrame);
        },
        () => {
          display_element.innerHTML = '<p class="rc-error">Could not show image ' +
            trial.stimulus + ". Please tell the researchers.</p>";
          this.jsPsych.abortExperiment("image failed to load: " + trial.stimulus);
        }
      );
    }
  }
  RapidCategorizationPlugin.info = info;
  return RapidCategorizationPlugin;
})(jsPsychModule);
