/* The one scaling filter, the lab's: Lanczos (a = 3) as Pillow's Image.resize computes it
 * for 8-bit images (the lab runner scales with Pillow LANCZOS), so an image scaled here has
 * the same pixels as the lab's at the same size: separable, horizontal pass first (rounded
 * to 8 bits), then vertical; support widened by the scale when shrinking; weights
 * normalised, then fixed point with 22 fractional bits and clipped to 0-255. Run once per
 * image before its trial, never per frame. tests/test_online_chinrest.py compares it with
 * Pillow pixel for pixel. */

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;
const SUPPORT = 3;

const sinc = (x) => {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
};
const lanczos = (x) => (x >= -SUPPORT && x < SUPPORT ? sinc(x) * sinc(x / SUPPORT) : 0);

/** For each output pixel: the first input pixel and the fixed-point weights. */
function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = SUPPORT * filterScale;
  const ss = 1 / filterScale;
  const out = [];
  for (let xx = 0; xx < outSize; xx += 1) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const w = [];
    let total = 0;
    for (let x = 0; x < xmax; x += 1) {
      const v = lanczos((x + xmin - center + 0.5) * ss);
      w.push(v);
      total += v;
    }
    const fixed = w.map((v) => {
      const k = total === 0 ? v : v / total;
      return k < 0 ? Math.trunc(-0.5 + k * ONE) : Math.trunc(0.5 + k * ONE);
    });
    out.push({ xmin, fixed });
  }
  return out;
}

const clip8 = (acc) => Math.min(255, Math.max(0, Math.floor(acc / ONE)));

/**
 * RGBA pixels (Uint8ClampedArray, width×height) -> RGBA pixels outW×outH, alpha set to 255
 * (the lab converts images to RGB).
 */
export function resampleLanczos(src, width, height, outW, outH) {
  // horizontal pass: height rows of outW pixels
  let mid = src;
  let midW = width;
  if (outW !== width) {
    const cx = coefficients(width, outW);
    mid = new Uint8ClampedArray(outW * height * 4);
    for (let y = 0; y < height; y += 1) {
      for (let xx = 0; xx < outW; xx += 1) {
        const { xmin, fixed } = cx[xx];
        for (let c = 0; c < 3; c += 1) {
          let acc = ONE / 2;
          for (let k = 0; k < fixed.length; k += 1) {
            acc += src[(y * width + xmin + k) * 4 + c] * fixed[k];
          }
          mid[(y * outW + xx) * 4 + c] = clip8(acc);
        }
      }
    }
    midW = outW;
  }
  const out = new Uint8ClampedArray(outW * outH * 4);
  if (outH !== height) {
    const cy = coefficients(height, outH);
    for (let yy = 0; yy < outH; yy += 1) {
      const { xmin: ymin, fixed } = cy[yy];
      for (let x = 0; x < outW; x += 1) {
        for (let c = 0; c < 3; c += 1) {
          let acc = ONE / 2;
          for (let k = 0; k < fixed.length; k += 1) {
            acc += mid[((ymin + k) * midW + x) * 4 + c] * fixed[k];
          }
          out[(yy * outW + x) * 4 + c] = clip8(acc);
        }
      }
    }
  } else {
    out.set(mid);
  }
  for (let i = 3; i < out.length; i += 4) out[i] = 255;
  return out;
}

/**
 * Draw a decoded image into ``canvas`` at outW×outH device pixels with the Lanczos filter
 * (its own size: copied as is), and set the canvas's CSS size to outW/dpr × outH/dpr, so one
 * canvas pixel is one device pixel.
 */
export function drawScaled(img, canvas, outW, outH, dpr) {
  const w = img.naturalWidth;
  const h = img.naturalHeight;
  const scratch = document.createElement("canvas");
  scratch.width = w;
  scratch.height = h;
  const sctx = scratch.getContext("2d", { willReadFrequently: true });
  sctx.drawImage(img, 0, 0);
  const pixels = sctx.getImageData(0, 0, w, h).data;
  const scaled = outW === w && outH === h ? pixels : resampleLanczos(pixels, w, h, outW, outH);
  canvas.width = outW;
  canvas.height = outH;
  canvas.getContext("2d").putImageData(new ImageData(scaled, outW, outH), 0, 0);
  canvas.style.width = outW / dpr + "px";
  canvas.style.height = outH / dpr + "px";
}
