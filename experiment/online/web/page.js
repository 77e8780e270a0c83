/* The study page's shared bits: who the participant is (Prolific's or MTurk's URL
 * parameters), and the message area every screen outside the trials writes to. */

export const params = Object.fromEntries(new URLSearchParams(location.search));
export const who = params.PROLIFIC_PID || params.workerId || null;

export const message = document.getElementById("rc-message");

/** Show ``html`` in the message area (server text goes through esc first). */
export const say = (html) => {
  message.style.display = "";
  message.innerHTML = html;
};

export const esc = (s) => String(s).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");

export const contact = () => "Please contact the researchers" +
  (who ? " and give them your id <b>" + esc(who) + "</b>" : "") + ".";
