// The compose page (web/templates/compose.html): builds a client.Message
// (Go's field names; attachments' Data base64) from the form, has it signed
// in the browser by kepsign.js (window.KEPSign: withKeyFile with a key file
// that never leaves the browser, or withAgent through `kep signer` and a
// smartcard), and posts the signed original, base64, to the send endpoint,
// which runs the access point's checks and answers with the acceptance
// evidence or the refusal's reason.
(function () {
  "use strict";
  var form = document.getElementById("compose");
  if (!form) { return; }
  var result = document.getElementById("result");

  function list(s) {
    return s.split(",").map(function (x) { return x.trim(); }).filter(function (x) { return x !== ""; });
  }

  function b64(buf) {
    var bytes = new Uint8Array(buf), s = "";
    for (var i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(s);
  }

  function show(text, ok) {
    result.textContent = text;
    result.className = ok ? "ok" : "bad";
  }

  function message() {
    var files = Array.prototype.slice.call(form.elements.files.files);
    return Promise.all(files.map(function (f) {
      return f.arrayBuffer().then(function (buf) {
        return { Name: f.name, ContentType: f.type || "", Data: b64(buf) };
      });
    })).then(function (atts) {
      return {
        From: form.dataset.from,
        To: list(form.elements.to.value),
        Cc: list(form.elements.cc.value),
        Subject: form.elements.subject.value,
        Body: form.elements.body.value,
        Attachments: atts,
        IletiTip: form.elements.iletitip.value,
        IletiID: "",
        Date: new Date().toISOString(),
        MessageID: ""
      };
    });
  }

  function sign(msg) {
    if (!window.KEPSign) { return Promise.reject(new Error("kepsign.js is not loaded")); }
    if (form.elements.method.value === "agent") { return window.KEPSign.withAgent(msg); }
    var key = form.elements.keyfile.files[0];
    if (!key) { return Promise.reject(new Error(document.documentElement.lang === "en" ? "Choose your key file." : "İmza dosyanızı seçin.")); }
    return window.KEPSign.withKeyFile(msg, key, form.elements.keypass.value);
  }

  if (window.KEPSign && window.KEPSign.agentAvailable) {
    window.KEPSign.agentAvailable().then(function (ok) {
      if (!ok) {
        document.getElementById("agent-missing").hidden = false;
        document.getElementById("method-agent").disabled = true;
      }
    });
  }

  // Load the signer while the user types the password.
  form.elements.keyfile.addEventListener("change", function () {
    if (window.KEPSign && window.KEPSign.preload) { window.KEPSign.preload().catch(function () {}); }
  });

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    show("…", true);
    message().then(sign).then(function (signed) {
      return fetch(form.dataset.send, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": form.elements.csrf.value },
        body: JSON.stringify({ signed: signed })
      }).then(function (r) { return r.json(); });
    }).then(function (res) {
      show(res.message + (res.code ? " (" + res.code + ")" : ""), res.accepted);
      if (res.accepted) { form.reset(); }
    }).catch(function (err) {
      show(String(err && err.message ? err.message : err), false);
    }).then(function () { button.disabled = false; });
  });
}());
