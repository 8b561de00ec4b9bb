// sms-archiver history browser: small niceties only; every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Empty filter fields stay out of the URL, so a bookmarked view reads clean.
  var form = document.querySelector("form.filters");
  if (!form) { return; }
  // Back to this page from the browser's cache: the fields are usable again.
  window.addEventListener("pageshow", function () {
    Array.prototype.forEach.call(form.elements, function (field) { field.disabled = false; });
  });
  form.addEventListener("submit", function () {
    Array.prototype.forEach.call(form.elements, function (field) {
      if (field.name && field.value === "") { field.disabled = true; }
    });
  });
});
