// The owner's register page: send the chosen Parquet file, or every *.parquet file of the
// chosen folder at its path relative to that folder (hive partitions kept), in chunks to the
// owner's upload area (resuming from the server's offset after a failed chunk); then register
// it, polling how far the server's registration report has got until the answer page comes.
(function () {
  var form = document.getElementById("register-form");
  if (!form) { return; }
  var CHUNK = 8 * 1024 * 1024;
  var csrf = form.querySelector("input[name=csrf_token]").value;
  var status = document.getElementById("upload-status");
  var bar = document.getElementById("upload-progress");
  function call(method, url, body) {
    return fetch(url, {method: method, body: body, credentials: "same-origin",
                       headers: {"X-CSRF-Token": csrf, "Content-Type": "application/octet-stream"}})
      .then(function (r) { return r.json().then(function (j) { if (!r.ok) { throw new Error(j.message); } return j; }); });
  }
  function chosen() {
    // [{file, path}]: a folder's files keep their path below the chosen folder; files picked
    // one by one go up under their own names.
    var folder = document.getElementById("data-folder").files, out = [];
    if (folder && folder.length) {
      for (var i = 0; i < folder.length; i++) {
        var rel = (folder[i].webkitRelativePath || folder[i].name).split("/").slice(1).join("/");
        if (/\.parquet$/.test(rel)) { out.push({file: folder[i], path: rel}); }
      }
      return out;
    }
    var files = document.getElementById("data-file").files;
    for (var j = 0; j < files.length; j++) { out.push({file: files[j], path: files[j].name}); }
    return out;
  }
  function token() {
    var bytes = new Uint8Array(16), hex = "";
    crypto.getRandomValues(bytes);
    for (var i = 0; i < bytes.length; i++) { hex += ("0" + bytes[i].toString(16)).slice(-2); }
    return hex;
  }
  function register() {
    // Registered by a fetch rather than a form navigation, so that this page can poll the
    // report's progress while the server computes it; the answer page then replaces this one.
    var box = document.getElementById("report-progress-box"), rbar = document.getElementById("report-progress");
    var rstatus = document.getElementById("report-status"), done = false;
    var tok = token();
    document.getElementById("progress-token").value = tok;
    box.hidden = false;
    rstatus.textContent = rstatus.dataset.computing;
    document.getElementById("register-submit").disabled = true;
    function poll() {
      if (done) { return; }
      fetch(form.dataset.progressUrl + "/" + tok, {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (p) {
          if (p && p.stage && !done) {
            rbar.value = Math.floor(100 * p.fraction);
            rstatus.textContent = rstatus.dataset.computing + " " + p.stage + " (" + rbar.value + "%)";
          }
        }, function () {})
        .then(function () { if (!done) { setTimeout(poll, 500); } });
    }
    poll();
    fetch(form.action, {method: "POST", body: new FormData(form), credentials: "same-origin"})
      .then(function (r) { return r.text(); })
      .then(function (html) {
        done = true;
        document.open(); document.write(html); document.close();
      }, function (err) { done = true; rstatus.textContent = err.message; });
  }
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    if (document.getElementById("upload-id").value) { register(); return; }
    var items = chosen();
    if (!items.length) { status.textContent = form.dataset.noFiles; return; }
    var total = 0;
    items.forEach(function (it) { total += it.file.size; });
    if (total > parseInt(form.dataset.maxBytes, 10)) {
      status.textContent = "over the upload limit (" + form.dataset.maxBytes + " bytes)"; return;
    }
    call("POST", form.dataset.uploadUrl).then(function (up) {
      var url = form.dataset.uploadUrl + "/" + up.upload, index = 0, offset = 0, sent = 0, failures = 0;
      var single = items.length === 1 && !document.getElementById("data-folder").files.length;
      function q(extra) {
        return single ? "?" + extra : "?path=" + encodeURIComponent(items[index].path) + "&" + extra;
      }
      function next() {
        if (index >= items.length) {
          document.getElementById("upload-id").value = up.upload; register(); return;
        }
        var file = items[index].file;
        if (offset >= file.size) { sent += file.size; index += 1; offset = 0; next(); return; }
        call("PUT", url + q("offset=" + offset), file.slice(offset, offset + CHUNK)).then(function (r) {
          offset = r.offset; bar.value = Math.floor(100 * (sent + offset) / Math.max(total, 1));
          status.textContent = bar.value + "% (" + (index + 1) + "/" + items.length + ")"; next();
        }, function (err) {
          failures += 1;
          if (failures > 3) { status.textContent = err.message; return; }
          // The chunk may have arrived: go on from what the server holds.
          fetch(url + q(""), {credentials: "same-origin"}).then(function (r) { return r.json(); })
            .then(function (s) { offset = s.offset; next(); }, function () { next(); });
        });
      }
      next();
    }, function (err) { status.textContent = err.message; });
  });
})();
