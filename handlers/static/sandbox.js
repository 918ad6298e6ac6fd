/* Namjai sandbox page: play a volunteer or a team's group chat against the sandbox JSON API.
 *
 * The API returns only what the bot sent; what this tab's user sent is kept in sessionStorage
 * (per chat) and woven into the transcript. Every poll re-renders the transcript from scratch
 * (only when something changed, so a button is not swapped under a finger or a click).
 */
(function () {
  "use strict";

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

  function teamLabel(t) {
    return t.name_th + " · " + t.name_en + " (" + t.code + ")";
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

  function parseAt(at) {
    if (!at) return null;
    var s = String(at);
    if (!/[zZ]|[+-]\d\d:?\d\d$/.test(s)) s += "Z"; // the server's clock is UTC
    var d = new Date(s);
    return isNaN(d) ? null : d;
  }

  function hhmm(at) {
    var d = parseAt(at);
    return d ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
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
      head.appendChild(h("span", "card-title", m.card.title));
      if (m.card.urgent) head.appendChild(h("span", "badge", "URGENT / ด่วน"));
      box.appendChild(head);
      if (text.indexOf(m.card.title) === 0) text = text.slice(m.card.title.length).replace(/^\n/, "");
    }
    if (m.notice) box.setAttribute("role", "alert");
    if (text) box.appendChild(h("div", "text", (m.notice ? "⚠️ " : "") + text));

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
        el.text.placeholder = "Comment / ความเห็น…";
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
    el.text.placeholder = "Message / พิมพ์ข้อความ";
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
