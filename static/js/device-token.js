/* The new device token page: copy the token to the clipboard. */
document.getElementById("copy-token").addEventListener("click", function () {
  var field = document.getElementById("device-token");
  var state = document.getElementById("copy-state");
  field.select();
  (navigator.clipboard ? navigator.clipboard.writeText(field.value) : Promise.reject())
    .then(function () { state.textContent = "Copied."; })
    .catch(function () { document.execCommand("copy"); state.textContent = "Copied (select and copy by hand if your browser refused)."; });
});
