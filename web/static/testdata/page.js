// The test page's script (static_test.go): signs the page's message with
// the picked key file through window.KEPSign and posts the outcome back.
(function () {
  'use strict';
  var form = document.getElementById('f');
  var status = document.getElementById('status');

  function report(result) {
    return fetch('/test/result', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(result)
    }).then(function () {
      status.textContent = result.signed ? 'signed' : 'refused: ' + result.error;
    });
  }

  document.getElementById('key').addEventListener('change', function () {
    window.KEPSign.preload();
  });

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    status.textContent = 'signing';
    var msg = JSON.parse(form.dataset.message);
    var file = document.getElementById('key').files[0];
    window.KEPSign.withKeyFile(msg, file, document.getElementById('pw').value)
      .then(function (signed) { return { signed: signed }; },
        function (e) { return { error: e.message, code: e.code || '' }; })
      .then(report);
  });
})();
