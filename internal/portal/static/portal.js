// The portal's only script: live progress of a start or stop (server-sent
// events), the idle countdown, and submitting the Open form. Every page
// works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const open = document.querySelector("form[data-autosubmit]");
  if (open) open.submit();

  const list = document.querySelector("ol[data-events]");
  if (list) {
    list.replaceChildren();
    const es = new EventSource(list.dataset.events);
    es.addEventListener("progress", (e) => {
      const li = document.createElement("li");
      li.textContent = JSON.parse(e.data).message;
      list.append(li);
    });
    const finish = () => { es.close(); location.reload(); };
    es.addEventListener("done", finish);
    es.addEventListener("error", (e) => { if (e.data) finish(); else { es.close(); setTimeout(() => location.reload(), 2000); } });
  }

  for (const el of document.querySelectorAll("[data-countdown]")) {
    let left = Number(el.dataset.countdown);
    const show = () => {
      const h = Math.floor(left / 3600), m = Math.floor(left % 3600 / 60), s = left % 60;
      el.textContent = (h ? h + "h" : "") + (h || m ? m + "m" : "") + s + "s";
    };
    setInterval(() => { if (left > 0) { left--; show(); } }, 1000);
  }
});
