/* Delivery, shared by the study page and the ClickMe game page (build-clickme copies this
 * file into the game site): what a page must not lose.
 * - Its state (session token, start nonce, the queue of finished trials or rounds not yet
 *   acknowledged) lives in localStorage under one key and survives a reload; storage full
 *   or switched off leaves it in memory, and the page goes on.
 * - A session is started with a random nonce stored before the first request, so a retry
 *   after a lost reply gets back the session that request made.
 * - The queue is posted oldest first; an item leaves it on 201 (stored) or 409 (already
 *   stored). Network errors, 5xx and 429 are retried (0.5 s doubling to 4 s); a 401 (the
 *   server no longer knows the token) stops delivery; any other answer is a refusal for
 *   good: the server keeps the item aside for the researchers and the page goes on. */

export const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// only these answers can heal by waiting
export const retriable = (status) => status === 0 || status >= 500 || status === 429;

export const randomHex = (n) => Array.from(crypto.getRandomValues(new Uint8Array(n)),
                                           (b) => b.toString(16).padStart(2, "0")).join("");

/** POST a JSON body -> {status, data}; a network error throws. */
export async function post(path, body, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = "Bearer " + token;
  const r = await fetch(path, { method: "POST", headers, body: JSON.stringify(body || {}) });
  let data;
  try { data = await r.json(); } catch { data = null; }
  return { status: r.status, data };
}

/**
 * The stored state and its delivery.
 * - storeKey: the localStorage key;
 * - fresh: () => a new state; it must hold nonce, token, started, completed, queue, rejected;
 * - endpoint: where queued items are posted (api/trials, api/rounds);
 * - idField: the item's field recorded with a refusal (seq, position);
 * - server: the server's name in messages ("study", "game");
 * - onAuthLost(reply): called when the server answers 401 to an item.
 */
export function createDelivery({ storeKey, fresh, endpoint, idField, server, onAuthLost }) {
  const load = () => {
    try { return JSON.parse(localStorage.getItem(storeKey)) || {}; } catch { return {}; }
  };
  const d = {
    state: Object.assign(fresh(), load()),
    storageOk: true,
    authLost: null,   // the server's reply when it no longer knows this session's token
  };

  d.save = () => {
    try {
      localStorage.setItem(storeKey, JSON.stringify(d.state));
      d.storageOk = true;
    } catch {
      d.storageOk = false;
    }
  };

  d.reset = () => {
    d.state = fresh();
    d.save();
  };

  let flushing = false;
  let retryMs = 500;
  let retryTimer = null;
  d.flush = async () => {
    if (flushing) return;
    flushing = true;
    try {
      const state = d.state;
      while (state.queue.length) {
        let r;
        try {
          r = await post(endpoint, state.queue[0], state.token);
        } catch {
          r = { status: 0 };
        }
        if (r.status === 201 || r.status === 409) {
          state.queue.shift();
          d.save();
          retryMs = 500;
        } else if (retriable(r.status)) {
          clearTimeout(retryTimer);
          retryTimer = setTimeout(d.flush, retryMs);
          retryMs = Math.min(retryMs * 2, 4000);
          return;
        } else if (r.status === 401) {
          // nothing sent now can be stored; the queue is kept and the page says what to do
          d.authLost = r;
          if (onAuthLost) onAuthLost(r);
          return;
        } else {
          state.rejected = state.rejected.slice(-19).concat(
            [{ status: r.status, reply: r.data, [idField]: state.queue[0][idField] }]);
          state.queue.shift();
          d.save();
        }
      }
    } finally {
      flushing = false;
    }
  };

  /** Queue a finished item and store it; flush() posts it. */
  d.enqueue = (item) => {
    d.state.queue.push(item);
    d.save();
  };

  /**
   * POST api/session until it answers: resumes with the token, or starts with the nonce.
   * Network errors, 5xx and 429 are retried (0.5 s doubling to 8 s, 7 tries, then an
   * error asking for a reload); a token the server never issued (a new database) starts
   * anew; any other refusal throws with the server's reason. Returns the reply's data.
   * ``extra``: more fields of a new session's start (the study page's calibration).
   */
  d.startSession = async (params, client, say, extra = {}) => {
    for (let attempt = 0, wait = 500; ; attempt += 1, wait = Math.min(wait * 2, 8000)) {
      if (!d.state.token && !d.state.nonce) {
        d.state.nonce = randomHex(24);
        d.state.started = new Date().toISOString();
        d.save();
      }
      let r;
      try {
        r = d.state.token ? await post("api/session", { token: d.state.token })
          : await post("api/session", { ...extra, params, client, nonce: d.state.nonce });
      } catch {
        r = { status: 0, data: null };
      }
      if (r.status === 200 || (r.status === 201 && !d.state.token)) {
        d.state.token = r.data.token;
        d.save();
        return r.data;
      }
      if (r.status === 401 && d.state.token) {
        d.reset();
        continue;
      }
      if (!retriable(r.status)) {
        throw new Error((r.data && r.data.error) ||
                        "the server refused to start (" + r.status + ")");
      }
      if (attempt >= 6) {
        throw new Error("The " + server + " server cannot be reached. Please check your " +
                        "internet connection and reload this page.");
      }
      say("<p>Connecting to the " + server + " server…</p>");
      await sleep(wait);
    }
  };

  window.addEventListener("online", () => d.flush());
  return d;
}
