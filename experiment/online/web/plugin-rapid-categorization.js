/* jsPsych plugin: one rapid-categorization trial, every duration counted in display frames.
 * Fixation, image and response window are driven by requestAnimationFrame; a change made in
 * a rAF callback is drawn in the next frame the browser composites, and onsets are those
 * callbacks' timestamps (the start of the frame being prepared, not the moment light leaves
 * the screen). Elapsed frames are computed from timestamps, so a skipped callback cannot
 * stretch the image.
 * A trial during which the page was hidden (visibilitychange) or frozen (a frame gap over
 * FROZEN_MS) before its response window closed is cut short and marked interrupted = 1: the
 * server accepts it whatever its durations and the analysis drops it. The participant sees a
 * pause screen and goes on with the space bar, so switching tabs never blocks the study. */
/* exported jsPsychRapidCategorization */
var jsPsychRapidCategorization = (function (jspsych) {
  "use strict";

  const P = jspsych.ParameterType;
  const FROZEN_MS = 500;
  const TIMED = ["fixation", "stimulus", "response"];
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
      /** Response window from image onset, ms (the study's Timing.window_ms). */
      window_ms: { type: P.FLOAT, default: undefined },
      /** Map of key -> response label, e.g. {f: "animal", j: "non-animal"}. */
      choices: { type: P.OBJECT, default: undefined },
      /** "Too slow" feedback length in frames (the study's Timing.too_slow_ms). */
      feedback_frames: { type: P.INT, default: undefined },
      feedback_html: { type: P.HTML_STRING, default: "Too slow!" },
      /** Image width in device pixels (the study's angle, from the virtual chinrest); null:
       * its own width, one image pixel per device pixel. Height in proportion. */
      stimulus_width_px: { type: P.INT, default: null },
      /** draw(img, canvas, width, height, dpr): draws the decoded image into the stage's
       * canvas at width×height device pixels, once, before the fixation (resample.js); null:
       * the image's own pixels, copied. */
      draw: { type: P.FUNCTION, default: null },
      /** Practice: the right answer ("animal"/"non-animal"); after an answer in the window,
       * correct_html or wrong_html stays for practice_feedback_frames. null: no feedback. */
      correct_response: { type: P.STRING, default: null },
      practice_feedback_frames: { type: P.INT, default: 0 },
      correct_html: { type: P.HTML_STRING, default: "Correct!" },
      wrong_html: { type: P.HTML_STRING, default: "Wrong" },
    },
    data: {
      response: { type: P.STRING }, key: { type: P.STRING }, rt_ms: { type: P.FLOAT },
      timeout: { type: P.INT }, fixation_ms: { type: P.FLOAT },
      frames_intended: { type: P.INT }, frames_shown: { type: P.INT },
      refresh_hz: { type: P.FLOAT }, dropped_frames: { type: P.INT },
      timing: { type: P.OBJECT }, interrupted: { type: P.INT },
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
        '<canvas id="rc-stimulus" class="rc-layer"></canvas>' +
        '<div id="rc-feedback" class="rc-layer"></div>' +
        '<div id="rc-practice-feedback" class="rc-layer"></div>' +
        '<div id="rc-paused" class="rc-layer"><p>The study paused because its tab was hidden ' +
        "(or the browser stalled), so this image does not count.</p><p>Please keep this tab " +
        "in front until the end. Press the <b>space bar</b> to go on.</p></div></div>";
      const stage = display_element.querySelector("#rc-stage");
      const fixation = display_element.querySelector("#rc-fixation");
      const img = display_element.querySelector("#rc-stimulus");
      const feedback = display_element.querySelector("#rc-feedback");
      const practiceFeedback = display_element.querySelector("#rc-practice-feedback");
      practiceFeedback.style.visibility = "hidden";
      const paused = display_element.querySelector("#rc-paused");
      paused.style.visibility = "hidden";
      feedback.innerHTML = trial.feedback_html;
      fixation.style.visibility = "hidden";
      img.style.visibility = "hidden";
      feedback.style.visibility = "hidden";

      const t = { fixation: null, onset: null, offset: null, feedback: null, key: null, end: null,
                  practice_feedback: null };
      let phase = "loading";
      let response = null;
      let key = null;
      let lateKey = null;
      let earlyKeys = 0;
      let last = null;
      let dropped = 0;
      let interrupted = false;
      const frames = (ts, from) => Math.round((ts - from) / period);
      const onVisibility = () => {
        if (document.visibilityState === "hidden" && TIMED.includes(phase)) interrupted = true;
      };

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
        if (response !== null || t.onset === null || phase === "feedback" ||
            phase === "done") return;
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
        document.removeEventListener("visibilitychange", onVisibility);
        const timeout = response === null ? 1 : 0;
        const r3 = (x) => (x === null ? null : Math.round(x * 1000) / 1000);
        const both = (a, b, f) => (a === null || b === null ? null : f(a, b));
        this.jsPsych.finishTrial({
          response: timeout ? "none" : response,
          key: timeout ? null : key,
          rt_ms: timeout ? null : r3(t.key - t.onset),
          timeout: timeout,
          // an interrupted trial leaves null what it never reached
          fixation_ms: both(t.onset, t.fixation, (a, b) => r3(a - b)),
          frames_intended: trial.stimulus_frames,
          frames_shown: both(t.offset, t.onset, frames),
          refresh_hz: trial.refresh_hz,
          dropped_frames: dropped,
          interrupted: interrupted ? 1 : 0,
          timing: {
            t_fixation: r3(t.fixation), t_onset: r3(t.onset), t_offset: r3(t.offset),
            t_key: r3(t.key), t_end: r3(t.end), stimulus_ms: r3(t.offset - t.onset),
            fixation_frames: trial.fixation_frames, early_keys: earlyKeys, late_key_rt: r3(lateKey),
          },
        });
      };

      // hidden or frozen: stop the trial, show the pause screen, go on with the space bar
      const interrupt = (ts) => {
        t.end = ts;
        setPhase("interrupted");
        document.removeEventListener("keydown", onKey);
        for (const layer of [fixation, img, feedback, practiceFeedback]) {
          layer.style.visibility = "hidden";
        }
        paused.style.visibility = "visible";
        const go = (e) => {
          if (e.key !== " " || e.repeat) return;
          document.removeEventListener("keydown", go);
          finish(ts);
        };
        document.addEventListener("keydown", go);
      };

      const onFrame = (ts) => {
        if (last !== null) {
          dropped += Math.max(0, frames(ts, last) - 1);
          if (ts - last > FROZEN_MS && TIMED.includes(phase)) interrupted = true;
        }
        last = ts;
        if (interrupted) return interrupt(ts);
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
          if (response !== null && trial.correct_response && trial.practice_feedback_frames > 0) {
            const right = response === trial.correct_response;
            practiceFeedback.innerHTML = right ? trial.correct_html : trial.wrong_html;
            practiceFeedback.dataset.correct = right ? "1" : "0";
            practiceFeedback.style.visibility = "visible";
            t.practice_feedback = ts;
            setPhase("practice-feedback");
          } else if (response !== null) {
            return finish(ts);
          }
        } else if (phase === "practice-feedback") {
          if (frames(ts, t.practice_feedback) >= trial.practice_feedback_frames) {
            practiceFeedback.style.visibility = "hidden";
            return finish(ts);
          }
        }
        if (phase === "response") {
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

      // the image is drawn into the canvas once, at its size in device pixels, before the
      // fixation; each frame then only shows or hides it (no scaling per frame)
      const source = new Image();
      source.src = trial.stimulus;
      source.decode().then(
        () => {
          const dpr = window.devicePixelRatio || 1;
          const w = trial.stimulus_width_px || source.naturalWidth;
          const h = Math.floor((source.naturalHeight * w) / source.naturalWidth + 0.5);
          if (trial.draw) {
            trial.draw(source, img, w, h, dpr);
          } else {
            img.width = w;
            img.height = h;
            img.getContext("2d").drawImage(source, 0, 0, w, h);
            img.style.width = w / dpr + "px";
            img.style.height = h / dpr + "px";
          }
          img.dataset.devicePx = w + "x" + h;
          // centred on whole device pixels, so the compositor copies it 1:1
          const box = stage.getBoundingClientRect();
          const snap = (from, room, size) => Math.round((from + (room - size / dpr) / 2) * dpr) /
            dpr - from;
          img.style.transform = "none";
          img.style.left = snap(box.left, box.width, w) + "px";
          img.style.top = snap(box.top, box.height, h) + "px";
          document.addEventListener("keydown", onKey);
          document.addEventListener("visibilitychange", onVisibility);
          setPhase("start");
          requestAnimationFrame(onFrame);
        },
        () => {
          // the URL goes in as text, never as markup
          const p = document.createElement("p");
          p.className = "rc-error";
          p.textContent = "Could not show image " + trial.stimulus +
            ". Please tell the researchers.";
          display_element.replaceChildren(p);
          // jsPsych shows the end message as HTML: outerHTML of a text node is escaped
          this.jsPsych.abortExperiment(p.outerHTML);
        }
      );
    }
  }
  RapidCategorizationPlugin.info = info;
  return RapidCategorizationPlugin;
})(jsPsychModule);
