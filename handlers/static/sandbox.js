/* Namjai sandbox page: play a volunteer or a team's group chat against the sandbox JSON API.
 *
 * The API returns only what the bot sent; what this tab's user sent is kept in sessionStorage
 * (per chat) and woven into the transcript. Every poll re-renders the transcript from scratch
 * (only when something changed, so a button is not swapped under a finger or a click).
 */
(function () {
  "use strict";
  var MAX_UPLOAD_FILE = 18000000;  // handlers/sandbox.py MAX_UPLOAD_FILE: base64 stays under the 25 MB request limit

  var POLL_MS = 1500;
  var PRESETS = [
    { label: "Pattaya Walking Street", th: "ถนนคนเดินพัทยา", lat: 12.9277, lon: 100.8724 },
    { label: "Chonburi town", th: "ตัวเมืองชลบุรี", lat: 13.3611, lon: 100.9847 },
    { label: "Bangkok Sanam Luang", th: "สนามหลวง กรุงเทพฯ", lat: 13.7554, lon: 100.4925 },
  ];
  var DEFAULT_TEAMS = ["pattaya-city", "pcdp-20"];

  var $ = function (id) { return document.getElementById(id); };
  var el = {
    transcript: $("transcript"), status: $("status"), chatId: $("chat-id"), userId: $("user-id"),
    roleVolunteer: $("role-volunteer"), roleTeam: $("role-team"),
    fieldsVolunteer: $("fields-volunteer"), fieldsTeam: $("fields-team"),
    volunteerName: $("volunteer-name"), staffName: $("staff-name"),
    teamSearch: $("team-search"), teamSelect: $("team-select"), openTab: $("open-tab"),
    sendForm: $("send-form"), text: $("text"), photoInput: $("photo-input"),
    locBtn: $("loc-btn"), locPanel: $("loc-panel"), locGeo: $("loc-geo"), locPresets: $("loc-presets"),
    locForm: $("loc-form"), locText: $("loc-text"),
    menuBtn: $("menu-btn"), menuPanel: $("menu-panel"),
    replyChip: $("reply-chip"), replyRef: $("reply-ref"), replyCancel: $("reply-cancel"),
  };

  var state = {
    role: "volunteer", name: "alice", team: "", staff: "somchai", lang: "th",
    chat: "", user: "", group: false,
    gen: 0,            // bumped when the identity changes: late answers for the old chat are dropped
    messages: [],      // the bot's messages, as last returned by the API
    lastKey: "",       // what was last rendered (to skip identical re-renders)
    replyTo: null,     // {reportId, title} while composing a comment on a card
    teams: [],
    pollTimer: null,
  };

  // ------------------------------------------------------------------ identity & URL hash

  function slug(s, fallback) {
    s = String(s || "").trim().toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40);
    return s || fallback;
  }

  function parseHash() {
    var h = new URLSearchParams(location.hash.replace(/^#/, ""));
    var out = { lang: h.get("lang") || "th" };
    if (h.has("team")) {
      out.role = "team";
      out.team = h.get("team") || "";
      out.staff = slug(h.get("as"), "somchai");
    } else {
      out.role = "volunteer";
      out.name = slug(h.get("volunteer"), "alice");
    }
    return out;
  }

  function hashFor(s) {
    var p = s.role === "team"
      ? "team=" + encodeURIComponent(s.team || "") + "&as=" + encodeURIComponent(s.staff)
      : "volunteer=" + encodeURIComponent(s.name);
    if (s.lang && s.lang !== "th") p += "&lang=" + encodeURIComponent(s.lang);
    return "#" + p;
  }

  function defaultTeam() {
    var codes = state.teams.map(function (t) { return t.code; });
    for (var i = 0; i < DEFAULT_TEAMS.length; i++) if (codes.indexOf(DEFAULT_TEAMS[i]) >= 0) return DEFAULT_TEAMS[i];
    return codes[0] || DEFAULT_TEAMS[0];
  }

  function applyHash() {
    var h = parseHash();
    state.role = h.role;
    state.lang = h.lang;
    if (h.role === "team") {
      state.team = h.team || defaultTeam();
      state.staff = h.staff;
    } else {
      state.name = h.name;
    }
    var chat = state.role === "team" ? "team-" + state.team : "u-" + state.name;
    var user = state.role === "team" ? state.staff : state.name;
    var wanted = hashFor(state);
    if (location.hash !== wanted) history.replaceState(null, "", wanted);
    syncHeader();
    if (chat !== state.chat || user !== state.user) {
      state.chat = chat;
      state.user = user;
      state.group = state.role === "team";
      state.gen++;
      state.messages = [];
      state.lastKey = "";
      state.replyTo = null;
      el.chatId.textContent = chat;
      el.userId.textContent = user;
      document.title = (state.group ? "👥 " + state.team : "🙋 " + state.name) + " · Namjai sandbox";
      render();
      poll();
    }
  }

  function go(partial) {
    var s = Object.assign({}, state, partial);
    location.hash = hashFor(s); // → hashchange → applyHash
  }

  function syncHeader() {
    var team = state.role === "team";
    el.roleVolunteer.checked = !team;
    el.roleTeam.checked = team;
    el.fieldsVolunteer.hidden = team;
    el.fieldsTeam.hidden = !team;
    if (document.activeElement !== el.volunteerName) el.volunteerName.value = state.name;
    if (document.activeElement !== el.staffName) el.staffName.value = state.staff;
    fillTeams();
    el.replyChip.hidden = !state.replyTo;
  }

  var narrow = window.matchMedia("(max-width: 699px)");
  function teamLabel(t) {
    // a phone's closed select shows what fits: the Thai name (the code is on the chat line below)
    return narrow.matches ? t.name_th : t.name_th + " · " + t.name_en + " (" + t.code + ")";
  }

  function fillTeams() {
    var q = el.teamSearch.value.trim().toLowerCase();
    var list = state.teams.filter(function (t) {
      return !q || t.code.indexOf(q) >= 0 || t.name_th.toLowerCase().indexOf(q) >= 0 || t.name_en.toLowerCase().indexOf(q) >= 0;
    });
    var current = state.teams.filter(function (t) { return t.code === state.team; })[0];
    if (current && list.indexOf(current) < 0) list.unshift(current);
    if (!current && state.team) list.unshift({ code: state.team, name_th: state.team, name_en: "?", kind: "" });
    el.teamSelect.textContent = "";
    list.forEach(function (t) {
      var o = document.createElement("option");
      o.value = t.code;
      o.textContent = teamLabel(t);
      o.title = t.name_th + " · " + t.name_en + " (" + t.code + ")";
      o.selected = t.code === state.team;
      el.teamSelect.appendChild(o);
    });
  }

  function loadTeams() {
    return fetch("/sandbox/api/teams").then(function (r) { return r.json(); }).then(function (j) {
      state.teams = j.teams || [];
      if (state.role === "team" && !parseHash().team) applyHash();
      fillTeams();
    }).catch(function () { setStatus("⚠ teams?", true); });
  }

  // ------------------------------------------------------------------ the user's own items

  function ownKey() { return "namjai.sandbox.own." + state.chat + "." + state.user; }
  function cardsKey() { return "namjai.sandbox.cards." + state.chat; }

  function load(key, fallback) {
    try { return JSON.parse(sessionStorage.getItem(key)) || fallback; } catch (e) { return fallback; }
  }
  function save(key, value) {
    try { sessionStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* quota: keep going */ }
  }

  function ownItems() { return load(ownKey(), []); }

  function maxSeenId() {
    var m = 0;
    state.messages.forEach(function (x) { if (x.id > m) m = x.id; });
    return m;
  }

  function addOwn(item) {
    var items = ownItems();
    item.after = maxSeenId();
    item.seq = Date.now() + Math.random();
    item.at = new Date().toISOString();
    item.state = "sending";
    items.push(item);
    if (items.length > 300) items = items.slice(-300);
    save(ownKey(), items);
    render();
    return item.seq;
  }

  function markOwn(seq, st) {
    var items = ownItems();
    items.forEach(function (i) { if (i.seq === seq) i.state = st; });
    save(ownKey(), items);
  }

  // The smallest outbox id ever seen for each card: its first version, whose "m<id>" is the
  // platform message id replies resolve against (unless the API says `message_id`).
  function firstIds(msgs) {
    var known = load(cardsKey(), {});
    var changed = false;
    msgs.forEach(function (m) {
      if (m.card_of == null) return;
      var k = String(m.card_of);
      if (!(k in known) || m.id < known[k]) { known[k] = m.id; changed = true; }
    });
    if (changed) save(cardsKey(), known);
    return known;
  }

  function replyTarget(reportId) {
    var m = state.messages.filter(function (x) { return x.card_of === reportId; })[0];
    if (m && m.message_id) return String(m.message_id);
    var first = load(cardsKey(), {})[String(reportId)];
    return "m" + (first != null ? first : m ? m.id : "");
  }

  // ------------------------------------------------------------------ talking to the API

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "e-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }

  function setStatus(text, bad) {
    el.status.textContent = text || "";
    el.status.className = "status" + (bad ? " bad" : "");
  }

  function post(event, own) {
    var gen = state.gen;
    var seq = own ? addOwn(own) : null;
    var body = Object.assign({
      chat: state.chat, user: state.user, name: state.user, lang: state.lang, group: state.group,
      event_id: uuid(),
    }, event);
    setStatus("…");
    return fetch("/sandbox/api/events", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    }).then(function (r) {
      if (!r.ok) return r.text().then(function (t) { throw new Error(r.status + " " + t); });
      return r.json();
    }).then(function (j) {
      if (seq !== null) markOwn(seq, "sent");
      setStatus("");
      if (gen === state.gen) { state.messages = j.messages || []; render(); }
      poll();
    }).catch(function (e) {
      if (seq !== null) markOwn(seq, "failed");
      setStatus("⚠ " + e.message.slice(0, 80), true);
      render(true);
    });
  }

  function poll() {
    clearTimeout(state.pollTimer);
    var gen = state.gen;
    var chat = state.chat;
    fetch("/sandbox/api/chats/" + encodeURIComponent(chat) + "/messages")
      .then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
      .then(function (j) {
        if (gen !== state.gen) return;
        state.messages = j.messages || [];
        if (el.status.classList.contains("bad") && el.status.textContent.indexOf("offline") >= 0) setStatus("");
        render();
      })
      .catch(function () { if (gen === state.gen) setStatus("⚠ offline", true); })
      .then(function () {
        if (gen === state.gen) {
          clearTimeout(state.pollTimer);
          state.pollTimer = setTimeout(poll, POLL_MS);
        }
      });
  }

  // ------------------------------------------------------------------ rendering

  function h(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  // A reference number (NJ-2569-000001) never breaks across lines: each is its own nowrap span.
  var REF = /NJ-\d{4}-\d{6}/g;
  function withRefs(cls, text) {
    var e = h("div", cls);
    var last = 0, m;
    REF.lastIndex = 0;
    while ((m = REF.exec(text)) !== null) {
      if (m.index > last) e.appendChild(document.createTextNode(text.slice(last, m.index)));
      e.appendChild(h("span", "ref", m[0]));
      last = m.index + m[0].length;
    }
    if (last < text.length) e.appendChild(document.createTextNode(text.slice(last)));
    return e;
  }

  function parseAt(at) {
    if (!at) return null;
    var s = String(at);
    if (!/[zZ]|[+-]\d\d:?\d\d$/.test(s)) s += "Z"; // the server's clock is UTC
    var d = new Date(s);
    return isNaN(d) ? null : d;
  }

  function hhmm(at) {
    var d = parseAt(at);
    // Bangkok time, as the bot's own messages tell it, whatever the browser's zone
    return d ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false, timeZone: "Asia/Bangkok" }) : "";
  }

  function osmLink(lat, lon) {
    var a = h("a", "loc", "📍 " + lat + ", " + lon);
    a.href = "https://www.openstreetmap.org/?mlat=" + lat + "&mlon=" + lon + "#map=17/" + lat + "/" + lon;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    return a;
  }

  function photoUrl(key) {
    return "/sandbox/photos/" + encodeURIComponent(key) + "?as=" + encodeURIComponent(state.user);
  }

  function renderBot(m, isLast) {
    var card = m.card_of != null;
    var box = h("article", "msg bot" + (card ? " card" : "") + (card && m.card && m.card.urgent ? " urgent" : "") + (m.notice ? " notice" : ""));
    box.dataset.id = m.id;
    if (card) box.dataset.report = m.card_of;
    var text = m.text || "";
    if (card && m.card && m.card.title) {
      var head = h("header", "card-head");
      var title = withRefs("card-title", m.card.title);
      head.appendChild(title);
      if (m.card.urgent) head.appendChild(h("span", "badge", "URGENT / ด่วน"));
      box.appendChild(head);
      if (text.indexOf(m.card.title) === 0) text = text.slice(m.card.title.length).replace(/^\n/, "");
    }
    if (m.notice) box.setAttribute("role", "alert");
    if (text) box.appendChild(withRefs("text", (m.notice ? "⚠️ " : "") + text));

    if (m.photos && m.photos.length) {
      var ph = h("div", "photos");
      m.photos.forEach(function (key) {
        var a = h("a");
        a.href = photoUrl(key);
        a.target = "_blank";
        a.rel = "noopener";
        var img = h("img");
        img.src = photoUrl(key);
        img.alt = "photo / รูป";
        img.loading = "lazy";
        a.appendChild(img);
        ph.appendChild(a);
      });
      box.appendChild(ph);
    }
    if (m.location) box.appendChild(osmLink(m.location.lat, m.location.lon));

    (m.buttons || []).forEach(function (row) {
      var r = h("div", "buttons");
      row.forEach(function (b) {
        var btn = h("button", "choice", b.label);
        btn.type = "button";
        btn.dataset.data = b.data;
        btn.addEventListener("click", function () {
          post({ type: "choice", data: b.data }, { kind: "choice", text: b.label });
        });
        r.appendChild(btn);
      });
      box.appendChild(r);
    });

    if (isLast && m.ask === "location") {
      var ask = h("button", "ask", "📍 Send location / ส่งตำแหน่ง");
      ask.type = "button";
      ask.addEventListener("click", function () { togglePanel(el.locPanel, el.locBtn, true); });
      box.appendChild(ask);
    } else if (isLast && m.ask === "photo") {
      var askp = h("button", "ask", "📷 Send photo / ส่งรูป");
      askp.type = "button";
      askp.addEventListener("click", function () { el.photoInput.click(); });
      box.appendChild(askp);
    }

    var meta = h("div", "meta");
    if (card && state.group) {
      var rep = h("button", "linkish reply", "↩ Reply / comment · ตอบกลับ");
      rep.type = "button";
      rep.addEventListener("click", function () {
        state.replyTo = { reportId: m.card_of, title: (m.card && m.card.title) || "#" + m.card_of };
        el.replyRef.textContent = state.replyTo.title;
        el.replyChip.hidden = false;
        el.text.placeholder = "ความเห็น…";
        el.text.focus();
      });
      meta.appendChild(rep);
    }
    meta.appendChild(h("span", null, hhmm(m.at)));
    box.appendChild(meta);
    return box;
  }

  function renderOwn(item) {
    var box = h("div", "msg own " + item.kind + (item.state === "failed" ? " failed" : ""));
    if (item.quote) box.appendChild(h("div", "quote", "↩ " + item.quote));
    if (item.kind === "photo") {
      if (item.thumb) {
        var img = h("img");
        img.src = item.thumb;
        img.alt = item.text || "photo";
        box.appendChild(img);
      } else {
        box.appendChild(h("div", "text", "📷 " + (item.text || "photo")));
      }
    } else if (item.kind === "location") {
      if (item.text) box.appendChild(h("div", "text", item.text));
      box.appendChild(osmLink(item.lat, item.lon));
    } else if (item.kind === "choice") {
      box.appendChild(h("div", "text", "👆 " + item.text));
    } else {
      box.appendChild(h("div", "text", item.text));
    }
    var meta = h("div", "meta", hhmm(item.at) + (item.state === "failed" ? " ⚠ not sent / ส่งไม่สำเร็จ" : item.state === "sending" ? " …" : " ✓"));
    box.appendChild(meta);
    return box;
  }

  function render(force) {
    var msgs = state.messages;
    var own = ownItems();
    var key = JSON.stringify([state.chat, msgs, own, state.group]);
    if (!force && key === state.lastKey) return;
    state.lastKey = key;

    var nearBottom = state.stick;
    var grew = msgs.length + own.length !== (state.lastCount || 0);
    state.lastCount = msgs.length + own.length;

    var first = firstIds(msgs);
    var pos = function (m) { return m.card_of != null && first[String(m.card_of)] != null ? first[String(m.card_of)] : m.id; };
    own = own.slice().sort(function (a, b) { return a.after - b.after || a.seq - b.seq; });
    var lastBot = msgs.length ? msgs[msgs.length - 1] : null;

    var frag = document.createDocumentFragment();
    if (!msgs.length && !own.length) {
      frag.appendChild(h("div", "empty",
        state.group
          ? "Cards for this team appear here. / การ์ดเรื่องของทีมจะแสดงที่นี่"
          : "Say hello or tap ☰ → /new to start. / พิมพ์ “สวัสดี” หรือกด ☰ → /new เพื่อเริ่ม"));
    }
    var i = 0;
    msgs.forEach(function (m) {
      while (i < own.length && own[i].after < pos(m)) frag.appendChild(renderOwn(own[i++]));
      frag.appendChild(renderBot(m, m === lastBot && (i >= own.length)));
    });
    while (i < own.length) frag.appendChild(renderOwn(own[i++]));

    var top = el.transcript.scrollTop;
    el.transcript.textContent = "";
    el.transcript.appendChild(frag);
    if (nearBottom || grew) toBottom();
    else el.transcript.scrollTop = top; // reading further up: stay there
    el.locBtn.classList.toggle("wanted", !!(lastBot && lastBot.ask === "location"));
    document.getElementById("photo-btn").classList.toggle("wanted", !!(lastBot && lastBot.ask === "photo"));
  }

  // Keep the transcript pinned to its end while the reader is there, also when the composer
  // grows (a panel opens) or the window is resized.
  state.stick = true;
  function toBottom() {
    el.transcript.scrollTop = el.transcript.scrollHeight;
    state.stick = true;
  }
  el.transcript.addEventListener("scroll", function () {
    state.stick = el.transcript.scrollHeight - el.transcript.scrollTop - el.transcript.clientHeight < 80;
  }, { passive: true });
  if (window.ResizeObserver) {
    new ResizeObserver(function () { if (state.stick) el.transcript.scrollTop = el.transcript.scrollHeight; }).observe(el.transcript);
  }

  // ------------------------------------------------------------------ composer

  function togglePanel(panel, btn, force) {
    var open = force != null ? force : panel.hidden;
    [[el.locPanel, el.locBtn], [el.menuPanel, el.menuBtn]].forEach(function (p) {
      p[0].hidden = true;
      p[1].setAttribute("aria-expanded", "false");
    });
    panel.hidden = !open;
    btn.setAttribute("aria-expanded", String(open));
  }

  function closePanels() {
    el.locPanel.hidden = true;
    el.menuPanel.hidden = true;
    el.locBtn.setAttribute("aria-expanded", "false");
    el.menuBtn.setAttribute("aria-expanded", "false");
  }

  function clearReply() {
    state.replyTo = null;
    el.replyChip.hidden = true;
    el.text.placeholder = "พิมพ์ข้อความ…";
  }

  el.sendForm.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = el.text.value;
    if (!text.trim()) return;
    var ev = { type: "text", text: text };
    var own = { kind: "text", text: text };
    if (state.replyTo) {
      ev.reply_to = replyTarget(state.replyTo.reportId);
      own.quote = state.replyTo.title;
      clearReply();
    }
    el.text.value = "";
    post(ev, own);
  });

  el.replyCancel.addEventListener("click", clearReply);

  function thumbnail(file) {
    return new Promise(function (resolve) {
      var url = URL.createObjectURL(file);
      var img = new Image();
      img.onload = function () {
        var s = Math.min(1, 200 / Math.max(img.naturalWidth, img.naturalHeight));
        var c = document.createElement("canvas");
        c.width = Math.max(1, Math.round(img.naturalWidth * s));
        c.height = Math.max(1, Math.round(img.naturalHeight * s));
        c.getContext("2d").drawImage(img, 0, 0, c.width, c.height);
        URL.revokeObjectURL(url);
        try { resolve(c.toDataURL("image/jpeg", 0.7)); } catch (e) { resolve(null); }
      };
      img.onerror = function () { URL.revokeObjectURL(url); resolve(null); };
      img.src = url;
    });
  }

  function base64Of(file) {
    return new Promise(function (resolve, reject) {
      var r = new FileReader();
      r.onload = function () { resolve(String(r.result).replace(/^data:[^,]*,/, "")); };
      r.onerror = function () { reject(r.error); };
      r.readAsDataURL(file);
    });
  }

  el.photoInput.addEventListener("change", function () {
    var files = Array.prototype.slice.call(el.photoInput.files || []);
    el.photoInput.value = "";
    closePanels();
    files.reduce(function (chain, file) {
      return chain.then(function () {
        if (file.size > MAX_UPLOAD_FILE) {  // the bot answers "too large" in the chat's language
          return post({ type: "photo", oversize: file.size }, { kind: "photo", text: file.name });
        }
        return Promise.all([base64Of(file), thumbnail(file)]).then(function (r) {
          return post({ type: "photo", photo_base64: r[0] }, { kind: "photo", thumb: r[1], text: file.name });
        });
      });
    }, Promise.resolve()).catch(function (e) { setStatus("⚠ photo: " + e, true); });
  });

  el.locBtn.addEventListener("click", function () { togglePanel(el.locPanel, el.locBtn); });
  el.menuBtn.addEventListener("click", function () { togglePanel(el.menuPanel, el.menuBtn); });

  PRESETS.forEach(function (p) {
    var b = h("button", "preset", p.label + " · " + p.th);
    b.type = "button";
    b.title = p.lat + ", " + p.lon;
    b.addEventListener("click", function () {
      closePanels();
      post({ type: "location", lat: p.lat, lon: p.lon, title: p.label },
           { kind: "location", text: p.label, lat: p.lat, lon: p.lon });
    });
    el.locPresets.appendChild(b);
  });

  // ------------------------------------------------------------------ the offline map
  // Thailand's provinces drawn in a canvas from our own GeoJSON (no tiles, nothing fetched from
  // elsewhere): drag to pan, wheel / pinch / buttons to zoom, a tap (not a drag) places a pin.
  // Equirectangular projection, x shrunk by cos(latitude) at Thailand's middle. One Path2D per
  // province, in degrees relative to an origin near the data (float precision), built once.

  var namjaiMap = (function () {
    var canvas = $("map-canvas"), box = $("map-box"), note = $("map-note"), btn = $("map-btn");
    var pickRow = $("map-pick"), coordsEl = $("map-coords"), sendBtn = $("map-send");
    var ctx = canvas.getContext("2d");
    var URL_ = "/sandbox/api/provinces.geojson";
    var MIN_Z = 2, MAX_Z = 16, CLICK_SLOP = 6;
    var m = {
      bounds: [97.34, 5.61, 105.64, 20.46],  // lon0, lat0, lon1, lat1 (replaced by the data's)
      lon0: 101.5, lat0: 13.0, k: Math.cos(13.0 * Math.PI / 180),
      provinces: null, loading: null,
      cx: 101.5, cy: 13.0, z: 4, placed: false,  // placed: the view was set (no auto-fit on load)
      w: 0, h: 0, dpr: 1, frame: 0, pick: null,
    };

    function scale() { return 256 * Math.pow(2, m.z) / 360; }          // px per degree of latitude
    function toScreen(lat, lon) {
      var s = scale();
      return [m.w / 2 + (lon - m.cx) * s * m.k, m.h / 2 - (lat - m.cy) * s];
    }
    function toLatLon(x, y) {
      var s = scale();
      return [m.cy - (y - m.h / 2) / s, m.cx + (x - m.w / 2) / (s * m.k)];
    }
    function clampZ(z) { return Math.max(MIN_Z, Math.min(MAX_Z, z)); }

    function setView(lat, lon, z) {
      m.z = clampZ(z == null ? m.z : z);
      // keep the centre near Thailand so the map cannot be lost off-screen
      m.cy = Math.max(m.bounds[1] - 3, Math.min(m.bounds[3] + 3, lat));
      m.cx = Math.max(m.bounds[0] - 3, Math.min(m.bounds[2] + 3, lon));
      redraw();
    }

    function zoomAt(x, y, z) {
      var at = toLatLon(x, y);
      m.z = clampZ(z);
      var s = scale();
      m.placed = true;
      setView(at[0] + (y - m.h / 2) / s, at[1] - (x - m.w / 2) / (s * m.k));
    }

    function fit() {
      var b = m.bounds;
      if (!m.w || !m.h) return;
      var pad = 12;
      var sx = (m.w - 2 * pad) / ((b[2] - b[0]) * m.k), sy = (m.h - 2 * pad) / (b[3] - b[1]);
      var z = Math.log(Math.min(sx, sy) * 360 / 256) / Math.LN2;
      setView((b[1] + b[3]) / 2, (b[0] + b[2]) / 2, z);
    }

    // ---- data

    function build(geo) {
      var feats = (geo && geo.features) || [];
      var polysOf = function (g) {
        if (!g) return [];
        return g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
      };
      var b = [180, 90, -180, -90];
      feats.forEach(function (f) {
        polysOf(f.geometry).forEach(function (poly) {
          poly[0].forEach(function (p) {
            if (p[0] < b[0]) b[0] = p[0]; if (p[0] > b[2]) b[2] = p[0];
            if (p[1] < b[1]) b[1] = p[1]; if (p[1] > b[3]) b[3] = p[1];
          });
        });
      });
      if (b[0] > b[2]) throw new Error("no provinces");
      m.bounds = b;
      m.lon0 = (b[0] + b[2]) / 2;
      m.lat0 = (b[1] + b[3]) / 2;
      m.k = Math.cos(m.lat0 * Math.PI / 180);
      return feats.map(function (f) {
        var props = f.properties || {};
        var path = new Path2D(), rings = [], bb = [180, 90, -180, -90], best = null, bestArea = 0;
        polysOf(f.geometry).forEach(function (poly) {
          poly.forEach(function (ring, ri) {
            var flat = new Float64Array(ring.length * 2), area = 0, ax = 0, ay = 0;
            for (var i = 0; i < ring.length; i++) {
              var x = ring[i][0], y = ring[i][1];
              flat[2 * i] = x; flat[2 * i + 1] = y;
              if (i) path.lineTo(x - m.lon0, y - m.lat0); else path.moveTo(x - m.lon0, y - m.lat0);
              if (x < bb[0]) bb[0] = x; if (x > bb[2]) bb[2] = x;
              if (y < bb[1]) bb[1] = y; if (y > bb[3]) bb[3] = y;
              var j = (i + 1) % ring.length, c = x * ring[j][1] - ring[j][0] * y;
              area += c; ax += (x + ring[j][0]) * c; ay += (y + ring[j][1]) * c;
            }
            path.closePath();
            rings.push(flat);
            if (ri === 0 && Math.abs(area) > bestArea && area) {
              bestArea = Math.abs(area);
              best = [ay / (3 * area), ax / (3 * area)];
            }
          });
        });
        return {
          code: props.code, nameTh: props.name_th || "", nameEn: props.name_en || "",
          path: path, rings: rings, bbox: bb, label: best, size: bestArea,
        };
      }).sort(function (a, b2) { return b2.size - a.size; }); // labels: big provinces first
    }

    function load() {
      if (m.provinces) return Promise.resolve(m.provinces);
      if (m.loading) return m.loading;
      note.textContent = "Loading map… / กำลังโหลดแผนที่…";
      m.loading = fetch(URL_).then(function (r) {
        if (!r.ok) throw new Error(String(r.status));
        return r.json();
      }).then(function (geo) {
        m.provinces = build(geo);
        note.textContent = "";
        if (!m.placed) fit(); else redraw();
        canvas.dataset.ready = "1";
        return m.provinces;
      }).catch(function (e) {
        m.loading = null; // try again on the next open
        note.textContent = "⚠ map unavailable / โหลดแผนที่ไม่ได้ (" + String(e.message || e).slice(0, 40) + ")";
        throw e;
      });
      return m.loading;
    }

    // ---- which province (ray casting, even-odd over all rings: holes work)

    function provinceAt(lat, lon) {
      var list = m.provinces || [];
      for (var p = 0; p < list.length; p++) {
        var pr = list[p], bb = pr.bbox;
        if (lon < bb[0] || lon > bb[2] || lat < bb[1] || lat > bb[3]) continue;
        var inside = false;
        pr.rings.forEach(function (r) {
          for (var i = 0, n = r.length / 2, j = n - 1; i < n; j = i++) {
            var xi = r[2 * i], yi = r[2 * i + 1], xj = r[2 * j], yj = r[2 * j + 1];
            if ((yi > lat) !== (yj > lat) && lon < (xj - xi) * (lat - yi) / (yj - yi) + xi) inside = !inside;
          }
        });
        if (inside) return pr;
      }
      return null;
    }

    function provName(pr) { return pr ? (state.lang === "en" ? pr.nameEn || pr.nameTh : pr.nameTh || pr.nameEn) : ""; }

    // ---- drawing

    function redraw() {
      if (m.frame) return;
      m.frame = requestAnimationFrame(function () { m.frame = 0; draw(); });
    }

    function resize() {
      var w = canvas.clientWidth, hh = canvas.clientHeight;
      if (!w || !hh) return false;
      var dpr = Math.min(3, window.devicePixelRatio || 1);
      if (w !== m.w || hh !== m.h || dpr !== m.dpr) {
        m.w = w; m.h = hh; m.dpr = dpr;
        canvas.width = Math.round(w * dpr);
        canvas.height = Math.round(hh * dpr);
        if (!m.placed) fit();
      }
      return true;
    }

    function pin(x, y) {
      ctx.beginPath();
      ctx.moveTo(x, y);
      ctx.bezierCurveTo(x - 3, y - 7, x - 9, y - 10, x - 9, y - 17);
      ctx.arc(x, y - 17, 9, Math.PI, 0);
      ctx.bezierCurveTo(x + 9, y - 10, x + 3, y - 7, x, y);
      ctx.closePath();
      ctx.fillStyle = "#d93025";
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 1.5;
      ctx.fill();
      ctx.stroke();
      ctx.beginPath();
      ctx.arc(x, y - 17, 3.2, 0, 2 * Math.PI);
      ctx.fillStyle = "#ffffff";
      ctx.fill();
    }

    function draw() {
      if (box.hidden || !resize()) return;
      var dpr = m.dpr, s = scale();
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.fillStyle = "#dcebf3";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      var nw = toLatLon(0, 0), se = toLatLon(m.w, m.h); // visible box: lat north→south, lon west→east
      var visible = (m.provinces || []).filter(function (pr) {
        var b = pr.bbox;
        return b[2] >= nw[1] && b[0] <= se[1] && b[3] >= se[0] && b[1] <= nw[0];
      });
      var picked = m.pick && m.pick.province;
      ctx.setTransform(dpr * s * m.k, 0, 0, -dpr * s,
        dpr * (m.w / 2 + (m.lon0 - m.cx) * s * m.k), dpr * (m.h / 2 + (m.cy - m.lat0) * s));
      visible.forEach(function (pr) {
        ctx.fillStyle = pr === picked ? "#e3f4ea" : "#fbf8f0";
        ctx.fill(pr.path, "evenodd");
      });
      ctx.lineWidth = 0.8 / s;
      ctx.lineJoin = "round";
      ctx.strokeStyle = "#8d98a6";
      visible.forEach(function (pr) { ctx.stroke(pr.path); });
      if (picked && visible.indexOf(picked) >= 0) {
        ctx.lineWidth = 1.6 / s;
        ctx.strokeStyle = "#0a7d5a";
        ctx.stroke(picked.path);
      }

      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      if (s >= 90) { // province names once zoomed in enough to read them
        ctx.font = "11px system-ui, -apple-system, 'Noto Sans Thai', sans-serif";
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.lineWidth = 3;
        ctx.strokeStyle = "rgba(251, 248, 240, .9)";
        ctx.fillStyle = "#5b6573";
        var taken = [];
        visible.forEach(function (pr) {
          if (!pr.label) return;
          var p = toScreen(pr.label[0], pr.label[1]), name = provName(pr);
          var tw = ctx.measureText(name).width / 2 + 2;
          if (p[0] + tw < 0 || p[0] - tw > m.w || p[1] < 0 || p[1] > m.h) return;
          if (taken.some(function (t) { return Math.abs(t[0] - p[0]) < t[2] + tw && Math.abs(t[1] - p[1]) < 13; })) return;
          taken.push([p[0], p[1], tw]);
          ctx.strokeText(name, p[0], p[1]);
          ctx.fillText(name, p[0], p[1]);
        });
      }
      PRESETS.forEach(function (p) { // the presets, as small dots
        var q = toScreen(p.lat, p.lon);
        ctx.beginPath();
        ctx.arc(q[0], q[1], 3.5, 0, 2 * Math.PI);
        ctx.fillStyle = "#0a7d5a";
        ctx.strokeStyle = "#ffffff";
        ctx.lineWidth = 1.5;
        ctx.fill();
        ctx.stroke();
      });
      if (m.pick) {
        var q = toScreen(m.pick.lat, m.pick.lon);
        pin(q[0], q[1]);
      }
    }

    // ---- picking and sending

    function decimals() { return Math.max(3, Math.min(6, Math.ceil(Math.log(scale()) / Math.LN10))); }

    function clearPick() {
      m.pick = null;
      sendBtn.disabled = true;
      coordsEl.textContent = "Tap the map to place a pin / แตะแผนที่เพื่อปักหมุด";
      redraw();
    }

    function pickAt(x, y) {
      var ll = toLatLon(x, y), d = decimals();
      var lat = +ll[0].toFixed(d), lon = +ll[1].toFixed(d);
      var pr = provinceAt(lat, lon);
      m.pick = { lat: lat, lon: lon, province: pr };
      var where = pr ? provName(pr) : m.provinces ? "Outside Thailand / นอกประเทศ" : "";
      coordsEl.textContent = "";
      coordsEl.appendChild(h("span", "at", "📍 " + lat + ", " + lon));
      if (where) coordsEl.appendChild(h("span", "where", where));
      sendBtn.disabled = false;
      redraw();
      return { lat: lat, lon: lon, province: pr ? pr.nameEn : null };
    }

    sendBtn.addEventListener("click", function () {
      if (!m.pick) return;
      var lat = m.pick.lat, lon = m.pick.lon;
      clearPick();
      closePanels();
      redraw();
      post({ type: "location", lat: lat, lon: lon }, { kind: "location", lat: lat, lon: lon });
    });

    // ---- gestures: pointer events (mouse, pen, touch, two-finger pinch) and the wheel

    var pointers = {}, gesture = null;

    function local(e) {
      var r = canvas.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    }
    function ids() { return Object.keys(pointers); }
    function startGesture() {
      var k = ids();
      if (k.length === 1) {
        var p = pointers[k[0]];
        gesture = { kind: "pan", start: p.slice(), last: p.slice(), moved: gesture ? gesture.moved : false };
      } else if (k.length >= 2) {
        var a = pointers[k[0]], b = pointers[k[1]];
        var mid = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
        gesture = {
          kind: "pinch", moved: true, z0: m.z, at: toLatLon(mid[0], mid[1]),
          dist: Math.max(10, Math.hypot(a[0] - b[0], a[1] - b[1])),
        };
      } else {
        gesture = null;
      }
    }

    canvas.addEventListener("pointerdown", function (e) {
      if (e.pointerType === "mouse" && e.button !== 0) return;
      try { canvas.setPointerCapture(e.pointerId); } catch (err) { /* not capturable: fine */ }
      var fresh = !ids().length;
      pointers[e.pointerId] = local(e);
      if (fresh) gesture = null;
      startGesture();
      e.preventDefault();
    });

    canvas.addEventListener("pointermove", function (e) {
      if (!(e.pointerId in pointers) || !gesture) return;
      pointers[e.pointerId] = local(e);
      var p = pointers[e.pointerId];
      if (gesture.kind === "pan") {
        if (!gesture.moved && Math.hypot(p[0] - gesture.start[0], p[1] - gesture.start[1]) < CLICK_SLOP) return;
        gesture.moved = true;
        canvas.classList.add("dragging");
        var s = scale();
        m.placed = true;
        setView(m.cy + (p[1] - gesture.last[1]) / s, m.cx - (p[0] - gesture.last[0]) / (s * m.k));
        gesture.last = p.slice();
      } else {
        var k = ids(), a = pointers[k[0]], b = pointers[k[1]];
        var mid = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
        m.z = clampZ(gesture.z0 + Math.log(Math.max(10, Math.hypot(a[0] - b[0], a[1] - b[1])) / gesture.dist) / Math.LN2);
        var s2 = scale();
        m.placed = true;
        setView(gesture.at[0] + (mid[1] - m.h / 2) / s2, gesture.at[1] - (mid[0] - m.w / 2) / (s2 * m.k));
      }
    });

    function release(e, cancelled) {
      if (!(e.pointerId in pointers)) return;
      var p = local(e);
      var single = ids().length === 1, g = gesture;
      delete pointers[e.pointerId];
      if (single) {
        canvas.classList.remove("dragging");
        gesture = null;
        if (!cancelled && g && g.kind === "pan" && !g.moved) pickAt(p[0], p[1]);
      } else {
        startGesture(); // a finger lifted from a pinch: the other one pans on, no tap
        if (gesture) gesture.moved = true;
      }
    }
    canvas.addEventListener("pointerup", function (e) { release(e, false); });
    canvas.addEventListener("pointercancel", function (e) { release(e, true); });

    canvas.addEventListener("wheel", function (e) {
      e.preventDefault();
      var unit = e.deltaMode === 1 ? 0.05 : e.deltaMode === 2 ? 1 : 0.0025;
      var dz = Math.max(-1, Math.min(1, -e.deltaY * unit));
      var p = local(e);
      zoomAt(p[0], p[1], m.z + dz);
    }, { passive: false });

    $("map-in").addEventListener("click", function () { zoomAt(m.w / 2, m.h / 2, m.z + 1); });
    $("map-out").addEventListener("click", function () { zoomAt(m.w / 2, m.h / 2, m.z - 1); });
    $("map-fit").addEventListener("click", function () { m.placed = false; fit(); });

    function open(show) {
      var on = show == null ? box.hidden : !!show;
      box.hidden = !on;
      btn.setAttribute("aria-expanded", String(on));
      el.locPanel.classList.toggle("map-open", on);
      pickRow.hidden = !on;
      if (!on) { clearPick(); return Promise.resolve(); }
      resize();
      redraw();
      return load().catch(function () { /* shown in the map's note */ });
    }

    btn.addEventListener("click", function () { open(); });
    if (window.ResizeObserver) new ResizeObserver(function () { if (!box.hidden) { resize(); redraw(); } }).observe(box);
    else window.addEventListener("resize", function () { if (!box.hidden) { resize(); redraw(); } });

    // for tests and the console: window.namjaiMap.centerOn(12.9277, 100.8724, 12)
    return {
      open: function () { togglePanel(el.locPanel, el.locBtn, true); return open(true); },
      ready: load,
      centerOn: function (lat, lon, zoom) {
        m.placed = true;
        setView(+lat, +lon, zoom == null ? m.z : +zoom);
        return { lat: m.cy, lon: m.cx, zoom: m.z };
      },
      pickAt: pickAt,
      view: function () { return { lat: m.cy, lon: m.cx, zoom: m.z, width: m.w, height: m.h, k: m.k, pick: m.pick && { lat: m.pick.lat, lon: m.pick.lon } }; },
    };
  })();
  window.namjaiMap = namjaiMap;

  el.locGeo.addEventListener("click", function () {
    if (!navigator.geolocation) { setStatus("⚠ no geolocation / ไม่มี GPS", true); return; }
    setStatus("📍 …");
    navigator.geolocation.getCurrentPosition(function (pos) {
      closePanels();
      var lat = +pos.coords.latitude.toFixed(6), lon = +pos.coords.longitude.toFixed(6);
      post({ type: "location", lat: lat, lon: lon }, { kind: "location", lat: lat, lon: lon });
    }, function (err) {
      setStatus("⚠ " + (err.message || "location denied / ไม่ได้รับอนุญาต"), true);
    }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
  });

  el.locForm.addEventListener("submit", function (e) {
    e.preventDefault();
    var t = el.locText.value.trim();
    if (!t) return;
    el.locText.value = "";
    closePanels();
    post({ type: "text", text: t }, { kind: "text", text: t });
  });

  Array.prototype.forEach.call(el.menuPanel.querySelectorAll("[data-cmd]"), function (b) {
    b.addEventListener("click", function () {
      closePanels();
      var name = b.dataset.cmd;
      post({ type: "command", name: name, arg: "" }, { kind: "command", text: "/" + name });
    });
  });

  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") { closePanels(); clearReply(); }
  });

  // ------------------------------------------------------------------ header controls

  el.roleVolunteer.addEventListener("change", function () { go({ role: "volunteer" }); });
  el.roleTeam.addEventListener("change", function () { go({ role: "team", team: state.team || defaultTeam() }); });
  el.volunteerName.addEventListener("change", function () { go({ name: slug(el.volunteerName.value, "alice") }); });
  el.staffName.addEventListener("change", function () { go({ staff: slug(el.staffName.value, "somchai") }); });
  el.teamSelect.addEventListener("change", function () { go({ role: "team", team: el.teamSelect.value }); });
  el.teamSearch.addEventListener("input", fillTeams);
  el.teamSearch.addEventListener("keydown", function (e) {
    if (e.key !== "Enter") return;
    e.preventDefault();
    var q = el.teamSearch.value.trim().toLowerCase();
    var hit = state.teams.filter(function (t) {
      return t.code.indexOf(q) >= 0 || t.name_th.toLowerCase().indexOf(q) >= 0 || t.name_en.toLowerCase().indexOf(q) >= 0;
    })[0];
    if (hit) { el.teamSearch.value = ""; go({ role: "team", team: hit.code }); }
  });
  el.openTab.addEventListener("click", function () {
    var other = state.role === "team"
      ? { role: "volunteer", name: "alice", lang: state.lang }
      : { role: "team", team: defaultTeam(), staff: "somchai", lang: state.lang };
    window.open(location.pathname + hashFor(other), "_blank");
  });

  window.addEventListener("hashchange", applyHash);

  applyHash();
  loadTeams();
})();
