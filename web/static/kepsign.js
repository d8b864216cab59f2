// kepsign.js — signing in the browser for the KEP web mail (issue 14
// point 2; docs/signing-in-the-browser.md). It defines window.KEPSign:
//
//   KEPSign.withKeyFile(msg, file, password) → Promise<base64 signed message>
//       msg: a client.Message as a JSON object ({"From", "To": [], "Cc": [],
//       "Subject", "Body", "Attachments": [{"Name", "ContentType",
//       "Data": base64}], "IletiTip", "IletiID", "Date": RFC 3339,
//       "MessageID"}); file: a File, Blob, ArrayBuffer or Uint8Array of a
//       PKCS#12 (.p12, .pfx) or PEM key file; password: for PKCS#12 or an
//       encrypted PEM key. The key is decoded and used by kepsign.wasm (the
//       project's Go signing code) inside this page: it is never sent.
//   KEPSign.agentAvailable([port]) → Promise<bool>
//       whether `kep signer` answers on 127.0.0.1:port (default 18443).
//   KEPSign.withAgent(msg[, port]) → Promise<base64 signed message>
//       signs through `kep signer` (a smartcard, PKCS#11).
//   KEPSign.preload() → Promise<void>
//       optional: starts loading the signer (7 MB) before the first
//       withKeyFile, e.g. when the user picks a key file.
//
// A refusal rejects with an Error whose message is in the page's language
// (<html lang>: Turkish unless it starts with "en"), with .code (stable,
// e.g. "wrong-password"), .en and .tr. wasm_exec.js and kepsign.wasm are
// loaded from this script's own directory (/static/) on first use. No
// inline script and no eval: it runs under the CSP
// script-src 'self' 'wasm-unsafe-eval'.
(function () {
  'use strict';

  var AGENT_PORT = 18443;
  var script = document.currentScript;
  var base = script && script.src ? new URL('./', script.src).href : '/static/';
  var loading = null;

  function english() {
    return (document.documentElement.lang || '').toLowerCase().indexOf('en') === 0;
  }

  function refusal(code, en, tr) {
    var e = new Error(english() ? en : tr);
    e.code = code;
    e.en = en;
    e.tr = tr;
    return e;
  }

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      if (typeof window.Go === 'function') {
        resolve();
        return;
      }
      var s = document.createElement('script');
      s.src = src;
      s.onload = function () { resolve(); };
      s.onerror = function () {
        reject(refusal('load-failed',
          'The signer could not be loaded (' + src + '). Check your connection and reload the page.',
          'İmzalayıcı yüklenemedi (' + src + '). Bağlantınızı denetleyip sayfayı yenileyin.'));
      };
      document.head.appendChild(s);
    });
  }

  function instantiate(go) {
    var url = base + 'kepsign.wasm';
    return fetch(url, { credentials: 'same-origin' }).then(function (r) {
      if (!r.ok) {
        throw refusal('load-failed',
          'The signer could not be loaded (' + url + ': HTTP ' + r.status + '). Reload the page; if it persists, report it to the provider.',
          'İmzalayıcı yüklenemedi (' + url + ': HTTP ' + r.status + '). Sayfayı yenileyin; sürerse sağlayıcınıza bildirin.');
      }
      var type = r.headers.get('Content-Type') || '';
      if (WebAssembly.instantiateStreaming && type.indexOf('application/wasm') === 0) {
        return WebAssembly.instantiateStreaming(r, go.importObject);
      }
      return r.arrayBuffer().then(function (b) { return WebAssembly.instantiate(b, go.importObject); });
    }).catch(function (e) {
      if (e && e.code) throw e;
      throw refusal('load-failed',
        'The browser refused to start the signer (' + e + '). WebAssembly must be enabled; the page must allow it (Content-Security-Policy script-src \'wasm-unsafe-eval\').',
        'Tarayıcı imzalayıcıyı başlatmadı (' + e + '). WebAssembly açık olmalı ve sayfa buna izin vermeli (Content-Security-Policy script-src \'wasm-unsafe-eval\').');
    });
  }

  // load starts the Go program once; it publishes window.KEPSignWasm before
  // go.run returns (main blocks after setting it).
  function load() {
    if (!loading) {
      loading = loadScript(base + 'wasm_exec.js').then(function () {
        var go = new window.Go();
        return instantiate(go).then(function (r) {
          go.run(r.instance);
          if (!window.KEPSignWasm) {
            throw refusal('load-failed', 'The signer started but did not answer. Reload the page.',
              'İmzalayıcı başladı ama yanıt vermedi. Sayfayı yenileyin.');
          }
          return window.KEPSignWasm;
        });
      });
      loading.catch(function () { loading = null; }); // the next call tries again
    }
    return loading;
  }

  // bytes returns the key file's contents and whether they are a copy that
  // can be wiped after use.
  function bytes(file) {
    if (file instanceof Uint8Array) return Promise.resolve({ b: file, copy: false });
    if (file instanceof ArrayBuffer) return Promise.resolve({ b: new Uint8Array(file), copy: false });
    if (typeof Blob !== 'undefined' && file instanceof Blob) {
      return file.arrayBuffer().then(function (ab) { return { b: new Uint8Array(ab), copy: true }; });
    }
    return Promise.reject(refusal('no-file', 'Pick your key file (.p12, .pfx or .pem) first.',
      'Önce anahtar dosyanızı (.p12, .pfx ya da .pem) seçin.'));
  }

  function messageJSON(msg) {
    return typeof msg === 'string' ? msg : JSON.stringify(msg);
  }

  function withKeyFile(msg, file, password) {
    return Promise.all([load(), bytes(file)]).then(function (v) {
      var r;
      try {
        r = v[0].withKeyFile(messageJSON(msg), v[1].b, password == null ? '' : String(password));
      } finally {
        if (v[1].copy) v[1].b.fill(0);
      }
      if (r.error) throw refusal(r.code, r.en, r.tr);
      return r.signed;
    });
  }

  function agentURL(port, path) {
    return 'http://127.0.0.1:' + (port || AGENT_PORT) + path;
  }

  function agentAvailable(port) {
    var ctl = typeof AbortController === 'function' ? new AbortController() : null;
    var timer = setTimeout(function () { if (ctl) ctl.abort(); }, 3000);
    return fetch(agentURL(port, '/v1/status'), { method: 'GET', cache: 'no-store', signal: ctl ? ctl.signal : undefined })
      .then(function (r) { return r.ok; }, function () { return false; })
      .finally(function () { clearTimeout(timer); });
  }

  function withAgent(msg, port) {
    var where = '127.0.0.1:' + (port || AGENT_PORT);
    return fetch(agentURL(port, '/v1/sign'), {
      method: 'POST',
      cache: 'no-store',
      headers: { 'Content-Type': 'application/json' },
      body: messageJSON(msg)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (r.ok && typeof body.signed === 'string') return body.signed;
        if (body && typeof body.error === 'string' && body.error) {
          var e = new Error(body.error);
          e.code = r.status === 403 ? 'agent-refused' : 'agent-error';
          e.en = e.tr = body.error;
          throw e;
        }
        throw refusal('agent-error',
          'The local signer (kep signer) on ' + where + ' answered HTTP ' + r.status + ' without a signature.',
          'Yerel imzalayıcı (kep signer, ' + where + ') imza yerine HTTP ' + r.status + ' yanıtı verdi.');
      });
    }, function () {
      throw refusal('agent-unreachable',
        'The local signer is not running on ' + where + '. Plug in your smartcard and start `kep signer`, then try again.',
        'Yerel imzalayıcı ' + where + ' üzerinde çalışmıyor. Akıllı kartınızı takıp `kep signer` komutunu başlatın, sonra yeniden deneyin.');
    });
  }

  window.KEPSign = {
    withKeyFile: withKeyFile,
    agentAvailable: agentAvailable,
    withAgent: withAgent,
    preload: function () { return load().then(function () {}); }
  };
})();
