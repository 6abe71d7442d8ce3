// Realtime: our backpusher-style adapter. It keeps a Backbone collection in step with a
// Pusher channel (`created`, `updated`, `destroyed`) and names this browser's socket on
// every sync (X-Pusher-Socket-ID), so the server can ask herald not to echo our own changes.
(function (root, _, Backbone) {
  'use strict';

  var HEADER = 'X-Pusher-Socket-ID';

  function Realtime(pusher, channel, collection) {
    this.pusher = pusher;
    this.channel = channel;
    this.collection = collection;
    channel.bind('created', _.bind(this.created, this));
    channel.bind('updated', _.bind(this.updated, this));
    channel.bind('destroyed', _.bind(this.destroyed, this));
  }

  _.extend(Realtime.prototype, Backbone.Events, {
    created: function (data) {
      var model = this.collection.add(data, { merge: true });
      this.trigger('remote', 'new', model);
    },

    updated: function (data) {
      var model = this.collection.get(data.id);
      if (model) {
        model.set(data);
      } else {
        model = this.collection.add(data);
      }
      this.trigger('remote', 'updated', model);
    },

    destroyed: function (data) {
      var model = this.collection.get(data.id);
      if (!model) return;
      this.collection.remove(model);
      this.trigger('remote', 'removed', model);
    }
  });

  // Wraps Backbone.sync once so every request carries the current socket id (it changes on
  // reconnect, so it is read at request time).
  Realtime.sendSocketId = function (pusher) {
    var sync = Backbone.sync;
    Backbone.sync = function (method, model, options) {
      options = options || {};
      var socketId = pusher.connection.socket_id;
      if (socketId) {
        var headers = {};
        headers[HEADER] = socketId;
        options.headers = _.extend(headers, options.headers);
      }
      return sync.call(this, method, model, options);
    };
  };

  root.Realtime = Realtime;
})(window, _, Backbone);
