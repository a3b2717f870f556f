// Runs before the modules, as a classic script: works out the first requests of the page in the address
// bar and starts them, so the data and the code arrive together (lib.js's api() takes a request started
// here instead of making it again). The paths each page reads first are built here, and only here.
(function () {
  'use strict';
  var QUERY = ['q', 'owner', 'model', 'status', 'since', 'until', 'after', 'key'];

  function route(hash) {
    var raw = String(hash || '').replace(/^#\/?/, '');
    var cut = raw.indexOf('?');
    var path = cut < 0 ? raw : raw.slice(0, cut);
    var parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    var params = {};
    new URLSearchParams(cut < 0 ? '' : raw.slice(cut + 1)).forEach(function (v, k) { params[k] = v; });
    return { page: parts[0] || 'responses', arg: parts[1] || null, params: params };
  }

  function day(t) { return new Date(t).toISOString().slice(0, 10); }

  // The spend page's range: the params', else the last 30 days (UTC, as the spend log's days are).
  function spendRange(params) {
    var now = Date.now();
    return { start_date: params.start_date || day(now - 29 * 86400000), end_date: params.end_date || day(now) };
  }

  function responsesQuery(params) {
    var q = new URLSearchParams();
    QUERY.forEach(function (k) { if (params[k]) q.set(k, params[k]); });
    return 'api/responses?' + q.toString();
  }

  // The GET requests a page makes as soon as it shows.
  function requests(r) {
    switch (r.page) {
      case 'responses':
        if (r.arg) {
          var one = 'api/responses/' + encodeURIComponent(r.arg);
          return [one, one + '/spend'];
        }
        return [responsesQuery(r.params)];
      case 'keys': return ['api/keys'];
      case 'spend': {
        var range = spendRange(r.params);
        return ['api/spend?start_date=' + range.start_date + '&end_date=' + range.end_date];
      }
      case 'models': case 'playground': return ['api/models'];
      default: return [];
    }
  }

  // path -> { key, answer: a promise of { ok, status, statusText, text }, done: that answer once here }
  var started = {};
  window.__rg = {
    route: route, requests: requests, spendRange: spendRange,
    take: function (path, key) {
      var s = started[path];
      delete started[path];
      return s && s.key === key ? s : null;
    },
    // The answer if it is here already: a page whose data came with its code renders it at once.
    ready: function (path, key) {
      var s = started[path];
      return s && s.key === key && s.done ? s.done : null;
    },
  };
  var key = sessionStorage.getItem('respgate.ui.key');
  if (!key) return;
  requests(route(location.hash)).concat(['api/session']).forEach(function (path) {
    var s = started[path] = { key: key, done: null };
    s.answer = fetch(path, { headers: { Authorization: 'Bearer ' + key } }).then(function (r) {
      return r.text().then(function (text) {
        s.done = { ok: r.ok, status: r.status, statusText: r.statusText, text: text };
        return s.done;
      });
    });
  });
  setTimeout(function () { started = {}; }, 10000);  // not taken by then: the page asked for something else
})();
