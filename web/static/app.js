// Progressive enhancement only: every page works without this file.
// A submitted form's buttons are disabled so a second click does not send it again (the server
// records a command once anyway: the form carries its idempotency key).
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") return;
  window.setTimeout(function () {
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
  }, 0);
});
