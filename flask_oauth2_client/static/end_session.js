// Sends the sign-out form to the provider at once (RP-initiated logout); the page's button does
// the same without JavaScript.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("oauth2-end-session");
  if (form) {
    form.submit();
  }
});
