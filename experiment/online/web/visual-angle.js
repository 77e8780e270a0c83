/* Stimulus size in degrees of visual angle: the same formulas as experiment/visual_angle.py
 * (the server checks the page's numbers with it; tests/test_online_chinrest.py runs both
 * against the same hand values).
 *   θ = 2·atan(s / 2D)        s = 2·D·tan(θ/2)        (exact, not the small-angle D·θ)
 * An image is drawn at a whole number of device pixels, Math.round (half up), and the angle
 * recorded is the one those pixels subtend. */

export const CARD_WIDTH_CM = 8.56;   // ID-1 card (ISO/IEC 7810), the chinrest's ruler
export const BLIND_SPOT_DEG = 13.5;  // the blind spot's eccentricity the chinrest assumes

const rad = (deg) => (deg * Math.PI) / 180;

/** Width (cm) of a centred object subtending angleDeg at distanceCm: 2·D·tan(θ/2). */
export const sizeCm = (angleDeg, distanceCm) => 2 * distanceCm * Math.tan(rad(angleDeg) / 2);

/** Angle (°) a centred object widthCm wide subtends at distanceCm: 2·atan(s/2D). */
export const angleDeg = (widthCm, distanceCm) =>
  (2 * Math.atan(widthCm / (2 * distanceCm)) * 180) / Math.PI;

/** Width in pixels (not rounded) of an object subtending angle degrees. */
export const degToPx = (angle, distanceCm, pxPerCm) => sizeCm(angle, distanceCm) * pxPerCm;

/** Angle (°) of an object widthPx pixels wide. */
export const pxToDeg = (widthPx, distanceCm, pxPerCm) => angleDeg(widthPx / pxPerCm, distanceCm);

/** Whole pixels, half rounded up (as experiment.visual_angle.whole_px). */
export const wholePx = (px) => Math.floor(px + 0.5);

/** Pixels per cm from an ID-1 card's width in pixels. */
export const cardPxPerCm = (cardWidthPx) => cardWidthPx / CARD_WIDTH_CM;

/** Viewing distance (cm) from a point offsetCm from fixation at the blind spot: x / tan(θ). */
export const distanceFromEccentricity = (offsetCm, eccentricityDeg = BLIND_SPOT_DEG) =>
  offsetCm / Math.tan(rad(eccentricityDeg));

/**
 * How an image is drawn at requestedDeg for a calibration (CSS px/cm, distance, and the
 * devicePixelRatio): its width in whole device pixels, that width in CSS px, and the angle
 * those device pixels subtend.
 */
export function planSize(requestedDeg, distanceCm, cssPxPerCm, dpr) {
  const devicePxPerCm = cssPxPerCm * dpr;
  const drawnPx = wholePx(degToPx(requestedDeg, distanceCm, devicePxPerCm));
  return {
    drawnPx, cssPx: drawnPx / dpr,
    stimulusDeg: pxToDeg(drawnPx, distanceCm, devicePxPerCm),
  };
}
