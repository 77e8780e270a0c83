/* The study's title (build-online --title) heads the page while it shows a message (browser
 * checks, consent, loading, the completion code). While jsPsych runs, the message area is
 * hidden and so is the title: nothing but the trial is on screen, and the stage keeps its
 * place. */
(function () {
  "use strict";
  const title = document.getElementById("rc-title");
  const message = document.getElementById("rc-message");
  if (!title || !message) return;
  const sync = () => { title.style.display = message.style.display === "none" ? "none" : ""; };
  new MutationObserver(sync).observe(message, { attributes: true, attributeFilter: ["style"] });
  sync();
})();
