// The owner's register page: send the chosen Parquet file in chunks to the owner's upload
// area (resuming from the server's offset after a failed chunk), then submit the form.
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
  form.addEventListener("submit", function (e) {
    if (document.getElementById("upload-id").value) { return; }
    e.preventDefault();
    var file = document.getElementById("data-file").files[0];
    if (!file) { return; }
    if (file.size > parseInt(form.dataset.maxBytes, 10)) {
      status.textContent = "over the upload limit (" + form.dataset.maxBytes + " bytes)"; return;
    }
    call("POST", form.dataset.uploadUrl).then(function (up) {
      var url = form.dataset.uploadUrl + "/" + up.upload, offset = 0, failures = 0;
      function next() {
        if (offset >= file.size) {
          document.getElementById("upload-id").value = up.upload; form.submit(); return;
        }
        call("PUT", url + "?offset=" + offset, file.slice(offset, offset + CHUNK)).then(function (r) {
          offset = r.offset; bar.value = Math.floor(100 * offset / file.size);
          status.textContent = bar.value + "%"; next();
        }, function (err) {
          failures += 1;
          if (failures > 3) { status.textContent = err.message; return; }
          // The chunk may have arrived: go on from what the server holds.
          fetch(url, {credentials: "same-origin"}).then(function (r) { return r.json(); })
            .then(function (s) { offset = s.offset; next(); }, function () { next(); });
        });
      }
      next();
    }, function (err) { status.textContent = err.message; });
  });
})();
