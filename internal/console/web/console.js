// optin console: refreshes each live part of the page once a second, while the tab is visible, and
// swaps it in only when it changed, so focus and selection survive. Without JavaScript the pages are
// the same, only static.
(function () {
  "use strict";
  document.querySelectorAll("[data-live]").forEach(function (el) {
    var last = null, busy = false;
    setInterval(function () {
      if (document.hidden || busy) return;
      busy = true;
      fetch(el.getAttribute("data-live"), { credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (r.status === 401) { window.location.reload(); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== last) {
            last = html;
            el.innerHTML = html;
            el.querySelectorAll(".thread").forEach(function (t) { t.scrollTop = t.scrollHeight; });
          }
        })
        .catch(function () {})
        .then(function () { busy = false; });
    }, 1000);
  });
  document.querySelectorAll(".thread").forEach(function (t) { t.scrollTop = t.scrollHeight; });

  // A phone's text box sends without leaving the page; the live part shows the message.
  document.querySelectorAll("form.say").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var body = new URLSearchParams(new FormData(form));
      var box = form.querySelector("input[name=text]");
      fetch(form.action, { method: "POST", body: body, credentials: "same-origin" })
        .then(function (r) {
          if (r.ok) { box.value = ""; box.removeAttribute("aria-invalid"); }
          else { box.setAttribute("aria-invalid", "true"); }
        })
        .catch(function () { box.setAttribute("aria-invalid", "true"); });
    });
  });
})();
