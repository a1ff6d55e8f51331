// Small behaviours without inline script (the pages' CSP allows only same-origin scripts).
document.addEventListener("change", function (e) {
  // <select data-autosubmit> submits its form, e.g. the dataset picker of the job builder.
  if (e.target.matches("[data-autosubmit]")) { e.target.form.submit(); }
});
// Countdowns tick locally between the server's refreshes of the job state.
setInterval(function () {
  document.querySelectorAll("[data-seconds-left]").forEach(function (el) {
    var s = parseInt(el.dataset.secondsLeft, 10);
    if (s > 0) { s -= 1; el.dataset.secondsLeft = s; el.textContent = s; }
  });
}, 1000);
// A page shown after a form post (a preview, an added query, a refusal): switching language
// posts the same form again with the new language, so the draft comes back in the new
// language instead of being lost (the links alone return to the empty form).
document.addEventListener("click", function (e) {
  var link = e.target.closest("#langs a");
  var posted = document.body.dataset.posted;
  if (!link || !posted) { return; }
  var form = Array.prototype.find.call(document.querySelectorAll("form[data-draft]"), function (f) {
    // getAttribute: f.action is the form's button named "action", not its URL.
    return new URL(f.getAttribute("action"), location.href).pathname === posted;
  });
  if (!form) { return; }
  e.preventDefault();
  // The language travels with the form (site.py sets it before the view): a separate request
  // could race with the live preview's, whose response carries the old session.
  var lang = document.createElement("input");
  lang.type = "hidden"; lang.name = "ui_lang"; lang.value = link.dataset.lang;
  form.appendChild(lang);
  form.submit();
});
// Buttons with data-confirm="..." ask first (submitting a job, releasing outputs); the text is
// translated on the server. Bound here: the CSP allows no inline onclick.
document.addEventListener("click", function (e) {
  var el = e.target.closest("[data-confirm]");
  if (el && !window.confirm(el.dataset.confirm)) { e.preventDefault(); e.stopImmediatePropagation(); }
}, true);
