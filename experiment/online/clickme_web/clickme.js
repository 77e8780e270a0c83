/* The ClickMe game page (paradigm §6): consent, session, instructions, a practice round, then
 * rounds on the images the server assigned. The player paints; every interval_ms along the
 * path a bubble is placed (a repeated position is skipped); after every query_every bubbles
 * the partner (partner.js) sees those bubbles of the image over grey; the round ends when it
 * recognizes the image, at time-out, or on skip. Each round is queued in localStorage the
 * moment it ends and posted until the server acknowledges it (201, or 409: already stored),
 * so a reload or a server restart loses nothing; a reload resumes at the next round. */
import GAME from "./game-config.js";
import { createDelivery, post, retriable, sleep } from "./delivery.js";

const params = Object.fromEntries(new URLSearchParams(location.search));
const who = params.PROLIFIC_PID || params.workerId || null;
const P = window.ClickmePartner;
const $ = (id) => document.getElementById(id);
const message = $("cm-message");
const say = (html) => { message.style.display = ""; message.innerHTML = html; };
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
// exactly the fields the server accepts (clickme_rules.py ROUND_FIELDS, QUERY_FIELDS)
const pick = (source, fields) => Object.fromEntries(
  fields.filter((f) => f in source).map((f) => [f, source[f]]));

const delivery = createDelivery({
  storeKey: "clickme:" + (who || "anonymous"),
  fresh: () => ({ nonce: null, token: null, started: null, completed: false,
                  practiced: false, score: 0, queue: [], rejected: [] }),
  endpoint: "api/rounds",
  idField: "position",
  server: "game",
});

const contact = () => "Please contact the researchers" +
  (who ? " and give them your id <b>" + esc(who) + "</b>" : "") + ".";

function button(html, id) {
  return new Promise((resolve) => {
    say(html + '<p><button id="' + id + '">Continue</button></p>');
    $(id).onclick = () => { message.innerHTML = ""; resolve(); };
  });
}

function choose(html, yes, no) {
  return new Promise((resolve) => {
    say(html + '<p><button id="cm-yes">' + yes + '</button> <button id="cm-no">' + no +
        "</button></p>");
    $("cm-yes").onclick = () => { message.innerHTML = ""; resolve(true); };
    $("cm-no").onclick = () => { message.innerHTML = ""; resolve(false); };
  });
}

function pixelsOf(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      const c = document.createElement("canvas");
      c.width = P.FRAME;
      c.height = P.FRAME;
      const ctx = c.getContext("2d", { willReadFrequently: true });
      ctx.drawImage(img, 0, 0, P.FRAME, P.FRAME);
      resolve({ img, rgba: ctx.getImageData(0, 0, P.FRAME, P.FRAME).data });
    };
    img.onerror = () => reject(new Error("image " + url + " could not be loaded"));
    img.src = url;
  });
}

// ---- one round: resolves {outcome, points, path, queries}
async function playRound(item, cfg, label, loaded) {
  const { img, rgba } = loaded;
  const canvas = $("cm-canvas");
  const ctx = canvas.getContext("2d");
  const view = $("cm-partner-view").getContext("2d");
  const viewData = view.createImageData(P.FRAME, P.FRAME);
  const grey = cfg.grey;
  ctx.drawImage(img, 0, 0);
  view.fillStyle = "rgb(" + grey + "," + grey + "," + grey + ")";
  view.fillRect(0, 0, P.FRAME, P.FRAME);
  $("cm-round").textContent = label;
  $("cm-feedback").innerHTML = "&nbsp;";
  message.style.display = "none";
  $("cm-game").style.display = "";
  const roundMs = cfg.seconds * 1000;
  const path = [];
  const queries = [];
  let pos = null;
  let painting = false;
  let over = false;
  let waiting = Promise.resolve();
  let recognizedAt = null;
  const t0 = performance.now();
  const now = () => Math.round(performance.now() - t0);
  const before = Math.floor(cfg.bubble / 2);

  function drawBubble(x, y) {
    ctx.strokeStyle = "rgba(255, 220, 0, 0.9)";
    ctx.strokeRect(x - before + 0.5, y - before + 0.5, cfg.bubble - 1, cfg.bubble - 1);
  }
  function showPartnerView(rgb) {
    for (let i = 0; i < P.FRAME * P.FRAME; i += 1) {
      viewData.data[4 * i] = rgb[3 * i];
      viewData.data[4 * i + 1] = rgb[3 * i + 1];
      viewData.data[4 * i + 2] = rgb[3 * i + 2];
      viewData.data[4 * i + 3] = 255;
    }
    view.putImageData(viewData, 0, 0);
  }
  function ask(n) {  // queries run one after another, each on the first n bubbles
    waiting = waiting.then(async () => {
      if (over === "skip" || recognizedAt !== null) return;
      const rgb = P.revealed(rgba, path, n, cfg.bubble, grey);
      showPartnerView(rgb);
      const top = P.top5(await P.logits(rgb));
      if (over === "skip" || recognizedAt !== null) return;
      const hit = P.recognized(top, item.class_index, item.category);
      queries.push(pick({ n_bubbles: n, top5: top, recognized: hit }, GAME.query_fields));
      window.cmGame.queries += 1;
      if (hit) recognizedAt = n;
    });
  }
  function place(t) {
    if (!pos || over || recognizedAt !== null || t > roundMs) return;
    const last = path[path.length - 1];
    if (last && t - last[2] < cfg.interval_ms) return;
    if (last && last[0] === pos[0] && last[1] === pos[1]) return;  // repeated position
    path.push([pos[0], pos[1], t]);
    drawBubble(pos[0], pos[1]);
    if (path.length % cfg.query_every === 0) ask(path.length);
  }
  function where(e) {
    const r = canvas.getBoundingClientRect();
    const x = Math.floor((e.clientX - r.left) * P.FRAME / r.width);
    const y = Math.floor((e.clientY - r.top) * P.FRAME / r.height);
    return (x >= 0 && y >= 0 && x < P.FRAME && y < P.FRAME) ? [x, y] : null;
  }
  canvas.onpointerdown = (e) => {
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    painting = true;
    pos = where(e);
    place(now());
  };
  canvas.onpointermove = (e) => { if (painting) pos = where(e); };
  canvas.onpointerup = canvas.onpointercancel = () => { painting = false; pos = null; };
  const ticker = setInterval(() => {
    const t = now();
    if (painting) place(t);
    $("cm-time").textContent = Math.max(0, (roundMs - t) / 1000).toFixed(1) + " s left";
    if (t >= roundMs && !over) over = "timeout";
  }, 10);

  const skipped = new Promise((resolve) => { $("cm-skip").onclick = () => resolve("skip"); });
  const result = await new Promise((resolve) => {
    skipped.then(() => { over = "skip"; resolve("skip"); });
    const watch = setInterval(async () => {
      if (recognizedAt !== null) { clearInterval(watch); resolve("recognized"); }
      if (over === "timeout") {
        clearInterval(watch);
        await waiting;   // queries placed in time are answered before the round is judged
        resolve(recognizedAt !== null ? "recognized" : "timeout");
      }
    }, 10);
  });
  clearInterval(ticker);
  over = over || result;
  canvas.onpointerdown = canvas.onpointermove = canvas.onpointerup = null;
  $("cm-skip").onclick = null;
  const outcome = result;
  let kept = path;
  let points = 0;
  if (outcome === "recognized") {
    kept = path.slice(0, recognizedAt);
    points = Math.floor(100.0 * Math.max(0, roundMs - kept[kept.length - 1][2]) / roundMs);
  }
  const answered = outcome === "skip" ? queries.slice() : queries;
  $("cm-feedback").textContent = outcome === "recognized"
    ? "Your partner recognized it! +" + points + " points"
    : outcome === "timeout" ? "Time is up: your partner did not recognize it." : "Skipped.";
  await sleep(outcome === "skip" ? 300 : 1200);
  $("cm-game").style.display = "none";
  return { outcome, points, path: kept, queries: answered };
}

async function finish() {
  say("<p>Saving your rounds…</p>");
  for (let wait = 1000; ; wait = Math.min(wait * 2, 8000)) {
    await delivery.flush();
    if (delivery.authLost) {
      say('<p class="cm-error" id="cm-stopped">The game server no longer recognises your ' +
          "session, so your rounds cannot be saved. " + contact() + "</p>");
      return;
    }
    const state = delivery.state;
    if (!state.queue.length) {
      let r;
      try { r = await post("api/complete", {}, state.token); } catch { r = { status: 0 }; }
      if (r.status === 200) {
        state.completed = true;
        delivery.save();
        let html = '<div id="cm-done"><p>Thank you, you are done. Your score: <b>' +
          esc(state.score) + "</b> points.</p>";
        if (r.data.completion_code) {
          html += '<p>Your completion code: <b id="cm-code">' + esc(r.data.completion_code) +
            "</b></p>";
        }
        if (r.data.completion_url) {
          html += '<p><a id="cm-return" href="' + esc(r.data.completion_url) +
            '">Return to the study site</a></p>';
          setTimeout(() => { location.href = r.data.completion_url; }, 5000);
        }
        say(html + "</div>");
        return;
      }
      if (!retriable(r.status)) {
        say('<p class="cm-error" id="cm-stopped">The game server refused to finish your ' +
            "session (" + esc(r.status) + ": " + esc((r.data && r.data.error) || "") + "). " +
            contact() + "</p>");
        return;
      }
    }
    say("<p>Saving your rounds… the game server cannot be reached right now; please keep " +
        "this page open, it keeps trying.</p>");
    await sleep(wait);
  }
}

async function run() {
  window.cmGame = { state: () => delivery.state, queries: 0, rounds: 0 };
  if (window.PointerEvent === undefined) {
    say('<p class="cm-error">This browser has no pointer events; please use a current ' +
        "browser (Chrome, Firefox, Safari or Edge).</p>");
    return;
  }
  if (innerWidth < 280 || innerHeight < 300) {
    say("<p>Your browser window is too small for the 256-pixel images. Please enlarge it " +
        "and reload this page.</p>");
    return;
  }
  if (!who && (delivery.state.token || delivery.state.nonce) && !delivery.state.completed) {
    const mine = await choose("<p>This browser holds an unfinished game.</p>",
                              "Continue my game", "I am someone else: start anew");
    if (!mine) delivery.reset();
  } else if (!who && delivery.state.completed) {
    delivery.reset();
  }
  if (!delivery.state.token && !delivery.state.nonce) {
    const agreed = await choose(
      "<h2>Consent</h2><p>In this game you paint the parts of images that matter for " +
      "recognising them, and a computer partner tries to recognise each image from what you " +
      "reveal. We record where and when you paint, the partner's answers, your platform id " +
      "if you came from one, and basic browser information. You may stop at any time.</p>",
      "I agree", "I do not agree");
    if (!agreed) { say("<p>You chose not to take part. You can close this page.</p>"); return; }
  }
  let session;
  const client = { user_agent: navigator.userAgent.slice(0, 300),
                   dpr: window.devicePixelRatio || 1,
                   screen: [screen.width, screen.height], window: [innerWidth, innerHeight] };
  try { session = await delivery.startSession(params, client, say); } catch (e) {
    say('<p class="cm-error">' + esc(e.message) + "</p>");
    return;
  }
  window.cmGame.session = session;
  const cfg = session.config;
  $("cm-title").textContent = cfg.title;
  document.title = cfg.title;
  delivery.flush();
  const state = delivery.state;
  const pending = new Set(state.queue.map((q) => q.position));
  const done = new Set(session.done);
  const todo = session.rounds.filter((r) => !done.has(r.position) && !pending.has(r.position));
  if (session.completed || !todo.length) return finish();
  say("<p>Loading your partner…</p>");
  try { await P.load(cfg.partner.url); } catch (e) {
    say('<p class="cm-error">The partner could not be loaded (' + esc(e.message) +
        "). Please reload the page or use another browser.</p>");
    return;
  }
  window.cmGame.partnerReady = true;
  // every image is loaded before play, so a network drop cannot stop a round
  say("<p>Loading images…</p>");
  const loaded = new Map();
  try {
    for (const item of (state.practiced ? todo : [cfg.practice].concat(todo))) {
      loaded.set(item.url, await pixelsOf(item.url));
    }
  } catch (e) {
    say('<p class="cm-error">' + esc(e.message) + ". Please reload the page.</p>");
    return;
  }
  const resumed = done.size + pending.size > 0;
  if (!state.practiced) {
    await button("<h2>How to play</h2><p>You see an image. <b>Press and drag</b> over the parts " +
      "that tell what it is: each stroke reveals them to your partner, a computer that sees " +
      "only what you paint, over grey. Every few strokes your partner guesses. The sooner it " +
      "recognises the image, the more points you get (up to 100 per image; " + cfg.seconds +
      " s per image). You may skip an image.</p><p>First, a practice round.</p>", "cm-go");
    await playRound(cfg.practice, cfg, "Practice", loaded.get(cfg.practice.url));
    state.practiced = true;
    delivery.save();
    await button("<p>Practice is over; now the real game (" + todo.length + " images).</p>",
                 "cm-go");
  } else if (resumed) {
    await button("<p>Welcome back: " + todo.length + " images to go.</p>", "cm-go");
  }
  const total = session.rounds.length;
  for (const item of todo) {
    if (delivery.authLost) break;
    const r = await playRound(item, cfg, "Image " + (item.position + 1) + " of " + total,
                              loaded.get(item.url));
    delivery.enqueue(pick({ position: item.position, image_id: item.image_id,
                            outcome: r.outcome, points: r.points, path: r.path,
                            queries: r.queries, timestamp_utc: new Date().toISOString() },
                          GAME.round_fields));
    state.score += r.points;
    $("cm-points").textContent = state.score;
    delivery.save();
    window.cmGame.rounds += 1;
    window.cmGame.lastPosition = item.position;
    delivery.flush();
    if (item !== todo[todo.length - 1]) await button("<p>Ready for the next image?</p>", "cm-next");
  }
  return finish();
}

run().catch((e) => say('<p class="cm-error">Something went wrong: ' + esc(e.message) + "</p>"));
