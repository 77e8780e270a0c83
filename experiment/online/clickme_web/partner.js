/* The ClickMe partner in the page: the revealed image (bubbles over grey) built from the
 * bubble path exactly as stimuli/click_maps.py's bubble_map, and the partner network
 * (python -m models export-partner) run by onnxruntime-web's WebAssembly build, served by
 * the site itself. The graph takes the 256×256 RGB image as uint8 and does the model's own
 * preprocessing, so this file only packs pixels. */
(function () {
  "use strict";
  const FRAME = 256;

  // (256·256·3) uint8 RGB: the image's pixels under the first n bubbles, grey elsewhere.
  // A bubble of side b at (x, y) covers columns floor(x) − floor(b/2) …
  // floor(x) + b − floor(b/2) − 1 (7 left, 6 right for 14 px), rows alike, clipped at the frame.
  function revealed(rgba, path, n, bubble, grey) {
    const out = new Uint8Array(FRAME * FRAME * 3).fill(grey);
    const before = Math.floor(bubble / 2);
    const after = bubble - before - 1;
    for (let k = 0; k < n; k += 1) {
      const x = Math.floor(path[k][0]);
      const y = Math.floor(path[k][1]);
      const r0 = Math.max(0, y - before);
      const r1 = Math.min(FRAME - 1, y + after);
      const c0 = Math.max(0, x - before);
      const c1 = Math.min(FRAME - 1, x + after);
      for (let r = r0; r <= r1; r += 1) {
        for (let c = c0; c <= c1; c += 1) {
          const i = r * FRAME + c;
          out[3 * i] = rgba[4 * i];
          out[3 * i + 1] = rgba[4 * i + 1];
          out[3 * i + 2] = rgba[4 * i + 2];
        }
      }
    }
    return out;
  }

  let session = null;

  async function load(url) {
    // one thread: SharedArrayBuffer needs cross-origin isolation, which a plain site lacks
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmPaths = new URL("vendor/ort/", document.baseURI).href;
    session = await ort.InferenceSession.create(url, { executionProviders: ["wasm"] });
    return session;
  }

  async function logits(rgb) {
    const input = new ort.Tensor("uint8", rgb, [1, FRAME, FRAME, 3]);
    const out = await session.run({ image: input });
    return out.logits.data;
  }

  function top5(values) {
    const idx = Array.from(values.keys());
    idx.sort((a, b) => values[b] - values[a] || a - b);
    return idx.slice(0, 5);
  }

  // The game's rule (experiment/online/clickme_rules.py is_recognized)
  function recognized(top, classIndex, category) {
    if (classIndex !== null && classIndex !== undefined) return top.includes(classIndex);
    return (top[0] <= 397) === (category === "animal");
  }

  window.ClickmePartner = { FRAME, revealed, load, logits, top5, recognized };
})();
