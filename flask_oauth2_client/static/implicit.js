// flask-oauth2-client: the legacy implicit grant (RFC 6749 §4.2).
//
// The provider put its answer in the URL fragment, which only this script can read. Remove it from
// the address bar and the history first, then post the known fields (the form's data-fields; any
// other part of the fragment stays here) to the server as a real form, so that the browser goes
// wherever the server sends it. Repeated fields are posted repeated: the server rejects them.
(function () {
  "use strict";

  var form = document.getElementById("oauth2-implicit");
  if (!form) {
    return;
  }
  var fragment = window.location.hash.replace(/^#/, "");
  if (fragment) {
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  var answer = new URLSearchParams(fragment);
  var names = (form.getAttribute("data-fields") || "").split(" ");
  var count = 0;
  names.forEach(function (name) {
    if (!name) {
      return;
    }
    answer.getAll(name).forEach(function (value) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.appendChild(input);
      count += 1;
    });
  });
  answer = null;
  fragment = null;

  if (count === 0) {
    // Nothing to complete (opened again from the history, or without an answer): say so.
    document.getElementById("oauth2-implicit-working").hidden = true;
    document.getElementById("oauth2-implicit-empty").hidden = false;
    return;
  }
  form.submit();
})();
