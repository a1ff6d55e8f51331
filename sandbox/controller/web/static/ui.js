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
