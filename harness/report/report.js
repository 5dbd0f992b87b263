// report.js - the copy buttons of the migcert HTML report (inlined by
// build-report.py): a button copies the REPRO line beside it.  Where the
// clipboard is not available (a page opened from a file in some browsers)
// the line is selected instead, so Ctrl-C copies it; never an error.
document.addEventListener("click", function (ev) {
  var b = ev.target.closest("button.copy");
  if (!b) return;
  var text = b.getAttribute("data-copy");
  function select() {
    var code = b.parentNode.querySelector("code.repro");
    if (!code) return;
    var r = document.createRange();
    r.selectNodeContents(code);
    var s = window.getSelection();
    s.removeAllRanges();
    s.addRange(r);
  }
  function done() { b.textContent = "copied"; setTimeout(function () { b.textContent = "copy"; }, 1500); }
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, select);
  } else {
    select();
  }
});
