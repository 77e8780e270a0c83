/* Browser checks, made before a list is assigned (so failing browsers do not unbalance the
 * lists): the refresh rate, measured, and the window's size in device pixels, against the
 * study's limits (study-config.js, from Timing in experiment/online/config.py). */

/** The refresh rate (Hz): the median of the intervals of n frames, the first 10 left out. */
export function measureRefresh(n) {
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

/** null if this browser can run the study, else the message (HTML) that says why not. */
export function browserProblem(refreshHz, dpr, limits) {
  if (innerWidth * dpr < limits.min_window_px || innerHeight * dpr < limits.min_window_px) {
    return "<p>Your browser window is too small to show the images at full size. " +
      "Please enlarge it and reload this page.</p>";
  }
  if (!(refreshHz >= limits.refresh_min_hz && refreshHz <= limits.refresh_max_hz)) {
    return "<p>Your screen's refresh rate (" + refreshHz.toFixed(1) + " Hz) could not be " +
      "measured reliably. Please close other tabs and reload, or use another browser.</p>";
  }
  return null;
}
