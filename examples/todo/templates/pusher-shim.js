    // herald-todo: point the page's own pusher library at herald, without touching
    // application.js or backpusher.js (see examples/todo/README.md, "The original front-end").
    (function (settings) {
      var Original = window.Pusher;
      if (!Original) { return; }
      var legacy = typeof Original.ws_port !== 'undefined' ||
        /^[12]\./.test(String(Original.VERSION || ''));
      if (legacy) {
        // pusher.js 1.x-2.x: global host and ports.
        Original.host = settings.wsHost;
        Original.ws_port = settings.wsPort;
        Original.wss_port = settings.wsPort;
        // pusher.js 1.8.x opens its socket as soon as document.body exists, which today is
        // before jQuery's DOM-ready runs application.js; backpusher then finds the raw
        // WebSocket in pusher.connection and throws. Opening after DOM-ready avoids that.
        var ready = Original.ready;
        if (typeof ready === 'function') {
          Original.ready = function () {
            var args = arguments;
            var later = function () { setTimeout(function () { ready.apply(Original, args); }, 0); };
            if (window.jQuery) { window.jQuery(later); } else { later(); }
          };
        }
        return;
      }
      // pusher-js 3 and later: settings per instance; 8.x requires `cluster`.
      var defaults = {
        wsHost: settings.wsHost,
        wsPort: settings.wsPort,
        wssPort: settings.wsPort,
        httpHost: settings.wsHost,
        httpPort: settings.wsPort,
        httpsPort: settings.wsPort,
        forceTLS: settings.forceTLS,
        enabledTransports: ['ws', 'xhr_streaming', 'xhr_polling'],
        disableStats: true,
        cluster: 'mt1'
      };
      var Wrapped = function (key, options) {
        var merged = {}, name;
        for (name in defaults) { merged[name] = defaults[name]; }
        for (name in (options || {})) { merged[name] = options[name]; }
        return new Original(key, merged);
      };
      Object.setPrototypeOf(Wrapped, Original);
      Wrapped.prototype = Original.prototype;
      window.Pusher = Wrapped;
    })(window.heraldPusher);
