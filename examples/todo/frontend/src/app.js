// The todo app: Backbone models and views for one shared list, realtime through herald.
// Settings (list path, channel, herald's WebSocket endpoint) come from the page.
(function ($, _, Backbone, Pusher, Realtime, settings) {
  'use strict';

  var Todo = Backbone.Model.extend({
    defaults: { shortdesc: '', isdone: false },

    toggle: function () {
      this.save({ isdone: !this.get('isdone') });
    }
  });

  var TodoList = Backbone.Collection.extend({
    model: Todo,
    url: settings.listPath + '/items',
    comparator: 'id',

    done: function () { return this.where({ isdone: true }); },
    remaining: function () { return this.where({ isdone: false }); }
  });

  var todos = new TodoList();

  var TodoView = Backbone.View.extend({
    tagName: 'li',
    className: 'todo',
    template: _.template($('#item-template').html()),

    events: {
      'change .check': 'toggleDone',
      'dblclick .todo-content': 'edit',
      'click .todo-edit': 'edit',
      'click .todo-destroy': 'clear',
      'keydown .todo-input': 'onKey',
      'blur .todo-input': 'close'
    },

    initialize: function () {
      this.listenTo(this.model, 'change', this.render);
      this.listenTo(this.model, 'remove', this.remove);
    },

    render: function () {
      if (this.$el.hasClass('editing')) return this; // don't clobber a local edit
      this.$el.html(this.template(this.model.toJSON()));
      this.$el.attr('data-id', this.model.id);
      this.$el.toggleClass('done', !!this.model.get('isdone'));
      this.input = this.$('.todo-input');
      return this;
    },

    toggleDone: function () { this.model.toggle(); },

    edit: function () {
      this.$el.addClass('editing');
      this.input.val(this.model.get('shortdesc')).trigger('focus');
    },

    onKey: function (e) {
      if (e.key === 'Enter') this.close();
      if (e.key === 'Escape') this.cancel();
    },

    cancel: function () {
      this.$el.removeClass('editing');
      this.render();
    },

    close: function () {
      if (!this.$el.hasClass('editing')) return;
      var value = $.trim(this.input.val());
      this.$el.removeClass('editing');
      if (value && value !== this.model.get('shortdesc')) {
        this.model.save({ shortdesc: value });
      } else {
        this.render();
      }
    },

    clear: function () { this.model.destroy(); }
  });

  var AppView = Backbone.View.extend({
    el: '#todoapp',
    statsTemplate: _.template($('#stats-template').html()),

    events: {
      'keydown #new-todo': 'createOnEnter',
      'click .todo-clear': 'clearCompleted',
      'focus #share-url': 'selectShareUrl',
      'click #share-url': 'selectShareUrl'
    },

    initialize: function () {
      this.input = this.$('#new-todo');
      this.list = this.$('#todo-list');
      this.listenTo(todos, 'add', this.addOne);
      this.listenTo(todos, 'reset', this.addAll);
      this.listenTo(todos, 'update reset change:isdone', this.renderStats);
      this.renderStats();
    },

    renderStats: function () {
      this.$('#todo-stats').html(this.statsTemplate({
        done: todos.done().length,
        remaining: todos.remaining().length
      }));
    },

    // Keeps the list in id order even when a remote item arrives out of order.
    addOne: function (todo) {
      var el = new TodoView({ model: todo }).render().el;
      var index = todos.indexOf(todo);
      var next = this.list.children().eq(index);
      if (index >= 0 && next.length) next.before(el); else this.list.append(el);
    },

    addAll: function () {
      this.list.empty();
      todos.each(this.addOne, this);
    },

    createOnEnter: function (e) {
      if (e.key !== 'Enter') return;
      var text = $.trim(this.input.val());
      if (!text) return;
      // wait: the item appears with its server id, so a remote echo could never duplicate it.
      todos.create({ shortdesc: text, isdone: false }, { wait: true });
      this.input.val('');
    },

    clearCompleted: function (e) {
      e.preventDefault();
      _.invoke(todos.done(), 'destroy');
    },

    selectShareUrl: function (e) { $(e.currentTarget).trigger('select'); }
  });

  // "Todos [2 new]" in the tab title while someone else edits, as in the 2011 demo.
  function showRemoteActivity(kind) {
    var match = document.title.match(/\[(\d+) (\w+)\]/);
    var count = match && match[2] === kind ? parseInt(match[1], 10) + 1 : 1;
    document.title = 'Todos [' + count + ' ' + kind + ']';
  }
  $(window).on('focus', function () {
    setTimeout(function () { document.title = 'Todos'; }, 2000);
  });

  function showState(state) {
    document.body.setAttribute('data-realtime', state);
    $('#status').text({
      connecting: 'connecting…', connected: 'connected', live: 'live',
      unavailable: 'offline: retrying…', failed: 'realtime unavailable', disconnected: 'offline'
    }[state] || state);
  }

  $(function () {
    new AppView();
    todos.fetch({ reset: true });

    // herald serves WebSockets and pusher-js's HTTP fallbacks on one host and port: the
    // fallbacks must point there too (httpHost defaults to sockjs-<cluster>.pusher.com).
    var pusher = new Pusher(settings.key, {
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
    });
    pusher.connection.bind('state_change', function (states) { showState(states.current); });
    var channel = pusher.subscribe(settings.channel);
    channel.bind('pusher:subscription_succeeded', function () {
      showState('live');
      // Catch up on anything that changed while we were not subscribed.
      todos.fetch();
    });
    Realtime.sendSocketId(pusher);
    var realtime = new Realtime(pusher, channel, todos);
    realtime.on('remote', showRemoteActivity);
  });
})(jQuery, _, Backbone, Pusher, Realtime, window.todoSettings);
