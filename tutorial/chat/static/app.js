// The browser side of the tutorial's chat: the official socket.io-client v4 (loaded by
// index.html as the global `io`) speaking the chat contract v1 (docs/reference/events.md).
//
// What each part of the seed's diagrams looks like from a browser:
// * diagram 3 (event flow): send-message with a clientMsgId, the server's new-message
//   echo with {id, seq, ts, user}, typing-start / typing-stop;
// * diagram 4 (rooms): join-room / leave-room, room-joined with members and history,
//   user-joined / user-left keep the member list up to date;
// * diagram 5 (connection states and error recovery): the status badge shows the state
//   machine; auth failure returns to the login form, a server rejection is shown to
//   the user, rate_limited queues the message and resends it after `retryAfter`, and
//   a network failure is retried by socket.io-client with exponential backoff.
//
// Security rule: text that came over the wire is only ever put into the page with
// `textContent` (never innerHTML), so a message is always shown as text.
//
// Nothing lost, nothing out of order (as careful as the teaching client): each room's
// messages are numbered by the server (`seq`, 1, 2, 3 ... without gaps). The page keeps,
// per room, the highest seq up to which it has *every* message (`lastSeq`). A message
// further ahead means a gap (in a cluster, a broadcast lost while Redis was away, or
// messages from two servers overtaking each other): if the gap is still open after
// GAP_WAIT_MS, the page asks for what it lacks with `join-room {roomId, since: lastSeq}`
// (the store has every acknowledged message), again until the gap is closed. Messages
// are shown in seq order, and a reconnection asks for everything after `lastSeq`.

const TYPING_IDLE_MS = 2000; // typing-stop after 2 s without a keystroke
const TYPING_STALE_MS = 8000; // forget somebody's typing-start if typing-stop never came
const ACK_TIMEOUT_MS = 8000;
const GAP_WAIT_MS = 500; // a missing seq may still arrive from another server: wait this long
const QUERY = new URLSearchParams(location.search);
// Reconnection attempts before FAILED (seed diagram 5: max_retries_exceeded); ?retries=N.
const RECONNECT_ATTEMPTS = Math.max(1, Number.parseInt(QUERY.get("retries"), 10) || 8);
const DEMO_USERS = ["alice", "bob", "charlie", "diana", "eve", "frank", "grace"];
// Seven colours; the first letter picks one, so the demo cast (a..g) gets seven different ones.
const PALETTE = ["#6f42c1", "#28a745", "#e83e8c", "#17a2b8", "#ff9500", "#b8860b", "#007bff"];
const TOKEN_KEY = "tutorial-chat-token";
const LAYER_KEY = "tutorial-live-diagram-layer";
const LAYER_NAMES = { chat: "chat events", packets: "packets", frames: "frames" };

const $ = (id) => document.getElementById(id);

const state = {
  socket: null,
  connState: "DISCONNECTED",
  user: null,
  token: null,
  credentials: null, // {username, password}: only until the first connect-confirmed
  rooms: new Map(), // roomId -> Room (see room())
  current: null, // roomId shown in the conversation
  queue: [], // outbox, in order: messages waiting to be (re)sent
  inFlight: null, // the outbox message waiting for its ack
  pausedUntil: 0, // rate_limited: no send before this time (ms)
  pumpTimer: null,
  typing: { roomId: null, timer: null },
  loggingIn: false,
  rejoining: new Set(), // rooms the server re-joins after a reconnect (auth offsets)
  rejoinTimer: null,
};

// -- small helpers -------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text; // never innerHTML
  return node;
}

function colorFor(name) {
  const text = String(name || "?");
  let h = 0;
  for (const ch of text.slice(1)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return PALETTE[(text.codePointAt(0) + PALETTE.length * h) % PALETTE.length];
}

function avatar(name, extra = "") {
  const a = el("span", `avatar ${extra}`.trim(), String(name || "?").slice(0, 1).toUpperCase());
  a.style.backgroundColor = colorFor(name);
  a.setAttribute("aria-hidden", "true");
  return a;
}

function clock(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function newClientMsgId() {
  const rand = crypto.getRandomValues(new Uint32Array(2));
  return `web-${Date.now().toString(36)}-${rand[0].toString(36)}${rand[1].toString(36)}`;
}

function room(id) {
  let r = state.rooms.get(id);
  if (!r) {
    r = {
      id,
      joined: false,
      messages: new Map(), // message id -> new-message payload
      seqs: new Set(), // seqs held (in messages)
      lastSeq: 0, // every message up to this seq is here (contiguous)
      tracked: false, // lastSeq is known (after the first room-joined)
      gapTimer: null,
      members: new Set(),
      typers: new Map(), // user -> timer that forgets a stale typing-start
      unread: 0,
      events: [], // presence lines: {kind, user, at}
    };
    state.rooms.set(id, r);
  }
  return r;
}

function errorText(error) {
  if (!error) return "unknown error";
  const code = error.code ? ` (${error.code})` : "";
  return `${error.message || "error"}${code}`;
}

// -- connection state badge (seed diagram 5) -----------------------------------------

function setStatus(name, detail = "") {
  state.connState = name;
  document.body.dataset.conn = name;
  const badge = $("status");
  badge.dataset.state = name;
  $("status-text").textContent = name;
  badge.title = detail ? `${name}: ${detail}` : `Connection state: ${name}`;
}

function showTransport(name) {
  $("transport").textContent = name ? `via ${name}` : "";
}

function showBanner(text, kind = "warn", action = null) {
  const banner = $("banner");
  banner.className = `banner banner-${kind}`;
  $("banner-text").textContent = text;
  const button = $("banner-action");
  if (action) {
    button.textContent = action.label;
    button.onclick = action.run;
    button.hidden = false;
  } else {
    button.hidden = true;
    button.onclick = null;
  }
  banner.hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
}

let noticeTimer = null;
function showNotice(text, kind = "info", sticky = false) {
  const notice = $("notice");
  notice.className = `notice notice-${kind}`;
  notice.textContent = text;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  if (!sticky) noticeTimer = setTimeout(() => (notice.hidden = true), 6000);
}

function hideNotice() {
  clearTimeout(noticeTimer);
  $("notice").hidden = true;
}

// -- views -----------------------------------------------------------------------------

function showLogin(message = "") {
  $("chat-view").hidden = true;
  $("login-view").hidden = false;
  $("whoami").hidden = true;
  const error = $("login-error");
  error.textContent = message;
  error.hidden = !message;
  $("login-button").disabled = false;
  $("login-button").textContent = "Log in";
  state.loggingIn = false;
  if (!$("username").value) $("username").focus();
  else $("password").focus();
}

function showChat() {
  $("login-view").hidden = true;
  $("chat-view").hidden = false;
  $("whoami").hidden = false;
  $("whoami-name").textContent = state.user;
  const av = $("whoami-avatar");
  av.textContent = state.user.slice(0, 1).toUpperCase();
  av.style.backgroundColor = colorFor(state.user);
  render();
}

function render() {
  renderRooms();
  renderConversation();
}

function renderRooms() {
  const list = $("room-list");
  const items = [];
  for (const r of [...state.rooms.values()].sort((a, b) => a.id.localeCompare(b.id))) {
    const li = el("li", "room-item");
    li.dataset.room = r.id;
    li.dataset.joined = String(r.joined);
    if (r.id === state.current) li.classList.add("active");
    const pick = el("button", "room-name");
    pick.type = "button";
    pick.append(el("span", "hash", "#"), el("span", "", r.id));
    if (r.unread > 0) pick.append(el("span", "unread", String(r.unread)));
    pick.addEventListener("click", () => selectRoom(r.id));
    const action = el("button", r.joined ? "room-leave" : "room-join", r.joined ? "Leave" : "Join");
    action.type = "button";
    action.title = r.joined ? `leave-room ${r.id}` : `join-room ${r.id}`;
    action.addEventListener("click", () => (r.joined ? leaveRoom(r.id) : joinRoom(r.id)));
    li.append(pick, action);
    items.push(li);
  }
  list.replaceChildren(...items);
}

function renderConversation() {
  const r = state.current ? state.rooms.get(state.current) : null;
  const title = $("room-title");
  const sub = $("room-sub");
  const action = $("room-action");
  const input = $("message-input");
  const send = $("send-button");
  if (!r) {
    title.textContent = "No room selected";
    sub.textContent = "Pick a room on the left and join it.";
    action.hidden = true;
  } else {
    title.textContent = `# ${r.id}`;
    if (r.joined) {
      const n = r.members.size;
      sub.textContent = `${n} ${n === 1 ? "person" : "people"} here`;
    } else {
      sub.textContent = "You are not in this room.";
    }
    action.hidden = false;
    action.textContent = r.joined ? "Leave room" : `Join #${r.id}`;
    action.className = r.joined ? "secondary" : "primary";
    action.onclick = () => (r.joined ? leaveRoom(r.id) : joinRoom(r.id));
  }
  const canWrite = Boolean(r && r.joined);
  input.disabled = !canWrite;
  send.disabled = !canWrite;
  input.placeholder = canWrite ? `Message #${r.id}` : "Join a room to write";
  renderMembers(r);
  renderMessages(r);
  renderTyping(r);
}

function renderMembers(r) {
  const list = $("member-list");
  const members = r && r.joined ? [...r.members].sort() : [];
  list.replaceChildren(
    ...members.map((name) => {
      const li = el("li", "member");
      li.dataset.user = name;
      li.append(avatar(name, "small"), el("span", "member-name", name));
      if (name === state.user) li.append(el("span", "you", "you"));
      if (r.typers.has(name)) li.append(el("span", "member-typing", "typing…"));
      return li;
    }),
  );
  $("member-empty").hidden = members.length > 0;
}

function renderMessages(r) {
  const list = $("messages");
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  const rows = [];
  if (r) {
    const lines = [];
    // Messages in seq order; a presence line goes after the last message seen before it
    // (the server's ts and this browser's clock need not agree).
    for (const m of r.messages.values()) lines.push({ seq: m.seq, rank: 0, at: m.ts, message: m });
    for (const e of r.events) lines.push({ seq: e.afterSeq, rank: 1, at: e.at, event: e });
    lines.sort((a, b) => a.seq - b.seq || a.rank - b.rank || a.at - b.at);
    let previous = null;
    for (const line of lines) {
      if (line.event) {
        rows.push(presenceRow(line.event));
        previous = null;
      } else {
        const m = line.message;
        const grouped = previous && previous.user === m.user && m.ts - previous.ts < 120000;
        rows.push(messageRow(m, grouped));
        previous = m;
      }
    }
    for (const p of [...state.queue, ...pendingFailures()].filter((p) => p.roomId === r.id)) {
      rows.push(pendingRow(p));
    }
  }
  list.replaceChildren(...rows);
  $("empty-room").hidden = !(r && r.joined && rows.length === 0);
  if (nearBottom || rows.length < 4) list.scrollTop = list.scrollHeight;
}

function messageRow(m, grouped) {
  const li = el("li", grouped ? "message grouped" : "message");
  li.dataset.id = m.id;
  li.dataset.seq = String(m.seq);
  li.dataset.user = m.user;
  if (m.user === state.user) li.classList.add("mine");
  li.append(grouped ? el("span", "avatar-gap") : avatar(m.user));
  const body = el("div", "message-body");
  if (!grouped) {
    const meta = el("div", "message-meta");
    const who = el("span", "message-user", m.user);
    who.style.color = colorFor(m.user);
    const time = el("time", "message-time", clock(m.ts));
    time.dateTime = new Date(m.ts).toISOString();
    time.title = `${new Date(m.ts).toLocaleString()} · seq ${m.seq} · id ${m.id}`;
    meta.append(who, time);
    body.append(meta);
  }
  body.append(el("div", "message-text", m.text)); // textContent: shown as text, never HTML
  li.append(body);
  return li;
}

function presenceRow(e) {
  const li = el("li", "presence");
  li.append(el("span", "presence-text", `${e.user} ${e.kind === "join" ? "joined" : "left"}`));
  li.append(el("time", "message-time", clock(e.at)));
  return li;
}

function pendingRow(p) {
  const li = el("li", `message pending pending-${p.status}`);
  li.dataset.clientMsgId = p.clientMsgId;
  li.append(avatar(state.user));
  const body = el("div", "message-body");
  const meta = el("div", "message-meta");
  meta.append(el("span", "message-user", state.user));
  const labels = {
    sending: "sending…",
    queued: "queued: slowing down",
    waiting: "waiting for the connection",
    failed: `not sent: ${p.error || "error"}`,
  };
  meta.append(el("span", "pending-status", labels[p.status] || p.status));
  body.append(meta, el("div", "message-text", p.text));
  if (p.status === "failed") {
    const dismiss = el("button", "link-button", "Dismiss");
    dismiss.type = "button";
    dismiss.addEventListener("click", () => {
      failures.delete(p.clientMsgId);
      renderConversation();
    });
    body.append(dismiss);
  }
  li.append(body);
  return li;
}

function renderTyping(r) {
  const box = $("typing");
  const names = r && r.joined ? [...r.typers.keys()].sort() : [];
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = `${names.length} people are typing…`;
  box.textContent = text;
  box.classList.toggle("active", Boolean(text));
}

// -- connecting (seed diagram 5) -------------------------------------------------------

function currentAuth() {
  const auth = state.token ? { token: state.token } : { ...state.credentials };
  // Reconnection without loss: tell the server the last seq seen per joined room.
  const offsets = {};
  for (const r of state.rooms.values()) if (r.joined) offsets[r.id] = r.lastSeq;
  if (Object.keys(offsets).length > 0) auth.offsets = offsets;
  return auth;
}

function transportsFromUrl() {
  const wanted = QUERY.get("transport"); // ?transport=polling or websocket
  return wanted ? wanted.split(",").filter(Boolean) : null;
}

function connect() {
  if (typeof window.io !== "function") {
    $("setup-missing").hidden = false;
    setStatus("ERROR", "socket.io-client is missing: run make setup");
    showLogin("The Socket.IO client library is missing: run make setup.");
    return;
  }
  teardown();
  const options = {
    autoConnect: false,
    forceNew: true,
    auth: (cb) => cb(currentAuth()),
    reconnectionAttempts: RECONNECT_ATTEMPTS,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
  };
  const transports = transportsFromUrl();
  if (transports) options.transports = transports;
  const socket = window.io(options);
  state.socket = socket;
  const mine = (fn) =>
    (...args) => {
      if (state.socket === socket) fn(...args);
    };

  socket.on("connect", mine(() => onConnect(socket)));
  socket.on("connect_error", mine((err) => onConnectError(socket, err)));
  socket.on("disconnect", mine((reason) => onDisconnect(socket, reason)));
  socket.on("connect-confirmed", mine(onConfirmed));
  socket.on("room-joined", mine(onRoomJoined));
  socket.on("user-joined", mine(onUserJoined));
  socket.on("user-left", mine(onUserLeft));
  socket.on("new-message", mine(onNewMessage));
  socket.on("typing-start", mine((d) => onTyping(d, true)));
  socket.on("typing-stop", mine((d) => onTyping(d, false)));
  socket.on("error", mine(onServerError));
  socket.io.on("reconnect_attempt", mine((n) => setStatus("RECONNECTING", `attempt ${n}`)));
  socket.io.on("reconnect_failed", mine(onReconnectFailed));

  setStatus("CONNECTING");
  socket.connect();
}

function teardown() {
  const socket = state.socket;
  state.socket = null;
  clearTimeout(retryTimer);
  if (socket) socket.disconnect();
  stopTyping(false);
  clearTimeout(state.pumpTimer);
  clearTimeout(state.rejoinTimer);
  state.rejoining.clear();
  state.inFlight = null;
}

function resetSession() {
  teardown();
  stopLive();
  state.user = null;
  state.token = null;
  state.credentials = null;
  for (const r of state.rooms.values()) clearGap(r);
  state.rooms.clear();
  state.current = null;
  state.queue = [];
  failures.clear();
  state.pausedUntil = 0;
  sessionStorage.removeItem(TOKEN_KEY);
  hideBanner();
  hideNotice();
  showTransport("");
}

function onConnect(socket) {
  setStatus("CONNECTED");
  hideBanner();
  const engine = socket.io.engine;
  showTransport(engine.transport.name);
  engine.once("upgrade", () => showTransport(engine.transport.name));
}

// Refusals worth waiting out: too many attempts (rate_limited, with retryAfter), or too
// many open connections for this user (another tab may close).
const RETRY_LATER = new Set(["rate_limited", "too_many_connections", "store_unavailable"]);
let retryTimer = null;

function onConnectError(socket, err) {
  const data = err && err.data && typeof err.data === "object" ? err.data : null;
  if (!socket.active && data && RETRY_LATER.has(data.code) && (state.user || state.token)) {
    // Logged in (a token): not a login problem. Wait, then try again (seed diagram 5:
    // temporary throttling).
    const seconds = Math.min(60, Math.max(1, Number(data.retryAfter) || 5));
    setStatus("RECONNECTING", errorText(data));
    showBanner(`${errorText(data)}. Trying again in ${Math.ceil(seconds)} s…`, "warn");
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => {
      if (state.socket === socket && !socket.connected) socket.connect();
    }, seconds * 1000);
    return;
  }
  if (!socket.active) {
    // The server refused the CONNECT: an auth failure. "User action required":
    // back to the login page with the server's message (seed diagram 5).
    const message = data ? errorText(data) : err.message;
    const wasLoggedIn = Boolean(state.user || state.token);
    const user = state.user || (state.credentials && state.credentials.username) || "";
    resetSession();
    setStatus("ERROR", message);
    $("username").value = user;
    $("password").value = "";
    showLogin(
      wasLoggedIn
        ? `Your session ended, please log in again: ${message}`
        : `Login failed: ${message}`,
    );
    return;
  }
  // A network problem: socket.io-client retries with exponential backoff.
  if (state.user) {
    setStatus("RECONNECTING", err.message);
  } else {
    setStatus("ERROR", err.message);
    const error = $("login-error");
    error.textContent = `Cannot reach the server (${err.message}); retrying…`;
    error.hidden = false;
  }
}

function onDisconnect(socket, reason) {
  stopTyping(false);
  for (const r of state.rooms.values()) clearTypers(r);
  state.inFlight = null;
  markOutbox();
  if (socket.active) {
    setStatus("RECONNECTING", reason);
    showBanner(`Connection lost (${reason}). Reconnecting…`, "warn");
  } else {
    setStatus("DISCONNECTED", reason);
    showBanner(`Disconnected by the server (${reason}).`, "error", {
      label: "Reconnect",
      run: () => {
        setStatus("CONNECTING");
        socket.connect();
      },
    });
  }
  showTransport("");
  if (state.user) render();
}

function onReconnectFailed() {
  if (!state.user) {
    // Never got in: back to a usable login form.
    resetSession();
    setStatus("FAILED", `gave up after ${RECONNECT_ATTEMPTS} attempts`);
    showLogin(`Could not reach the server after ${RECONNECT_ATTEMPTS} attempts. Try again.`);
    return;
  }
  setStatus("FAILED", `gave up after ${RECONNECT_ATTEMPTS} attempts`);
  showBanner(`Could not reconnect after ${RECONNECT_ATTEMPTS} attempts.`, "error", {
    label: "Try again",
    run: () => {
      // FAILED -> DISCONNECTED (manual reset) -> CONNECTING
      setStatus("DISCONNECTED", "manual reset");
      hideBanner();
      setStatus("CONNECTING");
      state.socket.connect();
    },
  });
}

function onConfirmed(data) {
  const first = !state.user;
  state.user = data.user;
  state.token = data.token;
  state.credentials = null; // the password is not kept once a token exists
  sessionStorage.setItem(TOKEN_KEY, data.token);
  for (const id of data.rooms || []) room(id);
  setStatus("CONNECTED", `as ${data.user}`);
  // After a reconnect the server re-joins our rooms (offsets) and replays what we
  // missed; the outbox waits for those room-joined, or resends would be not_in_room.
  state.rejoining = new Set([...state.rooms.values()].filter((r) => r.joined).map((r) => r.id));
  clearTimeout(state.rejoinTimer);
  if (state.rejoining.size > 0) {
    state.rejoinTimer = setTimeout(() => {
      state.rejoining.clear();
      pump();
    }, 3000);
  }
  if (first) {
    const general = state.rooms.has("general") ? "general" : [...state.rooms.keys()][0];
    state.current = general || null;
    showChat();
  } else {
    render();
  }
  pump();
  followLive(); // the live diagram follows this (new) Engine.IO session
}

// -- server events -----------------------------------------------------------------------

function onRoomJoined(data) {
  const r = room(data.roomId);
  r.joined = true;
  r.members = new Set(data.members || []);
  const history = data.history || [];
  trackFrom(r, history);
  for (const m of history) addMessage(r, m);
  advance(r);
  render();
  if (state.rejoining.delete(r.id) && state.rejoining.size === 0) {
    clearTimeout(state.rejoinTimer);
    pump();
  }
}

function presence(r, kind, user) {
  return { kind, user, at: Date.now(), afterSeq: r.lastSeq };
}

function onUserJoined(data) {
  const r = room(data.roomId);
  if (!r.members.has(data.user)) r.events.push(presence(r, "join", data.user));
  r.members.add(data.user);
  render();
}

function onUserLeft(data) {
  const r = room(data.roomId);
  if (r.members.delete(data.user)) r.events.push(presence(r, "left", data.user));
  forgetTyper(r, data.user);
  render();
}

function addMessage(r, m) {
  if (r.messages.has(m.id) || r.seqs.has(m.seq)) return false;
  r.messages.set(m.id, m);
  r.seqs.add(m.seq);
  advance(r);
  return true;
}

// -- gaps: per room, the contiguous lastSeq and the repair of what is missing ------------

function advance(r) {
  if (!r.tracked) return;
  while (r.seqs.has(r.lastSeq + 1)) r.lastSeq += 1;
  if (hasGap(r)) watchGap(r);
  else clearGap(r);
}

function hasGap(r) {
  for (const seq of r.seqs) if (seq > r.lastSeq + 1) return true;
  return false;
}

function watchGap(r) {
  if (r.gapTimer !== null) return;
  r.gapTimer = setTimeout(() => repairGap(r), GAP_WAIT_MS);
}

function clearGap(r) {
  clearTimeout(r.gapTimer);
  r.gapTimer = null;
}

async function repairGap(r) {
  r.gapTimer = null;
  if (!r.joined || state.rooms.get(r.id) !== r || !hasGap(r)) return;
  const socket = state.socket;
  if (socket && socket.connected && state.rejoining.size === 0) {
    // Replay from the lowest missing seq: the server answers room-joined with history.
    gapRepairs += 1;
    await request("join-room", { roomId: r.id, since: r.lastSeq });
  }
  if (hasGap(r)) watchGap(r); // still open (or offline): try again later
}

let gapRepairs = 0;

function trackFrom(r, history) {
  // The first room-joined of a room: its history is the last messages, gap-free.
  if (r.tracked) return;
  r.tracked = true;
  const first = history.length > 0 ? history[0].seq : null;
  r.lastSeq = first !== null ? first - 1 : 0;
  // Anything that arrived before room-joined and is older than the history is dropped.
  for (const [id, m] of r.messages) {
    if (m.seq <= r.lastSeq) {
      r.messages.delete(id);
      r.seqs.delete(m.seq);
    }
  }
}

function onNewMessage(m) {
  const r = room(m.roomId);
  const fresh = addMessage(r, m);
  // Our own message came back (diagram 3, step 4): it leaves the outbox.
  state.queue = state.queue.filter((p) => p.clientMsgId !== m.clientMsgId);
  forgetTyper(r, m.user);
  if (fresh && m.roomId !== state.current) r.unread += 1;
  render();
}

function onTyping(data, on) {
  if (data.user === state.user) return;
  const r = room(data.roomId);
  forgetTyper(r, data.user);
  if (on) r.typers.set(data.user, setTimeout(() => forgetTyper(r, data.user, true), TYPING_STALE_MS));
  if (r.id === state.current) renderConversation();
}

function forgetTyper(r, user, rerender = false) {
  clearTimeout(r.typers.get(user));
  r.typers.delete(user);
  if (rerender && r.id === state.current) renderConversation();
}

function clearTypers(r) {
  for (const user of [...r.typers.keys()]) forgetTyper(r, user);
}

function onServerError(error) {
  // Every event we send has an ack, and acks carry the same error: they are handled
  // there. What is left: being logged out, and errors no request of ours caused.
  if (error.code === "unauthenticated" || error.code === "auth_failed") {
    if (error.event === "authenticate") return;
    resetSession();
    setStatus("ERROR", error.message);
    showLogin(`Please log in again: ${errorText(error)}`);
    return;
  }
  if (!error.event || !KNOWN_EVENTS.has(error.event)) {
    showNotice(`Server error: ${errorText(error)}`, "error");
  }
}

const KNOWN_EVENTS = new Set([
  "join-room",
  "leave-room",
  "send-message",
  "typing-start",
  "typing-stop",
]);

// -- requests --------------------------------------------------------------------------

function request(event, payload) {
  // Resolves with the server's ack, or with {ok:false, error} when the ack never came.
  return new Promise((resolve) => {
    const socket = state.socket;
    if (!socket || !socket.connected) {
      resolve({ ok: false, error: { code: "offline", message: "not connected" } });
      return;
    }
    socket.timeout(ACK_TIMEOUT_MS).emit(event, payload, (err, ack) => {
      if (err) resolve({ ok: false, error: { code: "timeout", message: "no answer in time" } });
      else resolve(ack || { ok: false, error: { code: "invalid_payload", message: "no ack" } });
    });
  });
}

function selectRoom(id) {
  if (state.current !== id) stopTyping();
  state.current = id;
  room(id).unread = 0;
  hideNotice();
  render();
  if (room(id).joined) $("message-input").focus();
}

async function joinRoom(id) {
  const ack = await request("join-room", { roomId: id });
  if (!ack.ok) {
    // "Server rejection: show error message to user" (seed diagram 5)
    showNotice(`Could not join #${id}: ${errorText(ack.error)}`, "error");
    return;
  }
  selectRoom(id);
}

async function leaveRoom(id) {
  if (state.typing.roomId === id) stopTyping();
  const ack = await request("leave-room", { roomId: id });
  if (!ack.ok && ack.error.code !== "not_in_room") {
    showNotice(`Could not leave #${id}: ${errorText(ack.error)}`, "error");
    return;
  }
  const r = room(id);
  r.joined = false;
  r.members.clear();
  r.messages.clear();
  r.seqs.clear();
  clearGap(r);
  r.tracked = false;
  r.events = [];
  r.lastSeq = 0;
  clearTypers(r);
  render();
}

// -- typing indicator ------------------------------------------------------------------

function onInput() {
  const r = state.current && state.rooms.get(state.current);
  if (!r || !r.joined) return;
  if (state.pausedUntil > Date.now()) return; // rate_limited: typing can wait too
  if (!$("message-input").value) {
    stopTyping();
    return;
  }
  if (state.typing.roomId !== r.id) {
    stopTyping();
    state.typing.roomId = r.id;
    request("typing-start", { roomId: r.id });
  }
  clearTimeout(state.typing.timer);
  state.typing.timer = setTimeout(() => stopTyping(), TYPING_IDLE_MS);
}

function stopTyping(tell = true) {
  const roomId = state.typing.roomId;
  clearTimeout(state.typing.timer);
  state.typing = { roomId: null, timer: null };
  if (roomId && tell) request("typing-stop", { roomId });
}

// -- sending, with the outbox (rate_limited: queue and slow down) ------------------------

const failures = new Map(); // clientMsgId -> message the server refused

function pendingFailures() {
  return [...failures.values()];
}

function sendMessage(text) {
  const r = state.current && state.rooms.get(state.current);
  if (!r || !r.joined) return;
  stopTyping();
  state.queue.push({ clientMsgId: newClientMsgId(), roomId: r.id, text, status: "sending" });
  pump();
  renderConversation();
}

function markOutbox() {
  // What each waiting message shows: sending…, queued (slowing down), or waiting.
  const connected = Boolean(state.socket && state.socket.connected && state.user);
  const paused = state.pausedUntil > Date.now();
  for (const p of state.queue) {
    if (p === state.inFlight) p.status = "sending";
    else if (!connected) p.status = "waiting";
    else if (paused) p.status = "queued";
    else p.status = "sending";
  }
}

function showSlowDown() {
  const n = state.queue.length;
  const seconds = Math.max(0, (state.pausedUntil - Date.now()) / 1000);
  showNotice(
    `Slowing down: the server is rate limiting us (rate_limited). ${n} message` +
      `${n === 1 ? "" : "s"} queued; resending in ${seconds.toFixed(1)} s.`,
    "warn",
    true,
  );
  slowDownShown = true;
}

let slowDownShown = false;
function hideSlowDown() {
  if (slowDownShown && state.queue.length === 0) {
    slowDownShown = false;
    showNotice("Back to normal: every queued message was delivered.", "ok");
  }
}

function pump() {
  clearTimeout(state.pumpTimer);
  markOutbox();
  if (state.inFlight || state.queue.length === 0) return;
  const socket = state.socket;
  if (state.rejoining.size > 0) return; // onRoomJoined pumps
  if (!socket || !socket.connected || !state.user) return; // onConfirmed pumps
  const wait = state.pausedUntil - Date.now();
  if (wait > 0) {
    showSlowDown();
    state.pumpTimer = setTimeout(pump, wait);
    return;
  }
  // One message in flight at a time, so that the room sees them in the order typed.
  const p = state.queue[0];
  state.inFlight = p;
  markOutbox();
  const payload = { roomId: p.roomId, text: p.text, clientMsgId: p.clientMsgId };
  request("send-message", payload).then((ack) => {
    if (state.inFlight !== p) return; // the connection dropped meanwhile; pump() resends
    state.inFlight = null;
    if (ack.ok) {
      state.queue = state.queue.filter((q) => q !== p);
      hideSlowDown();
    } else if (ack.error.code === "rate_limited") {
      // Temporary throttling: keep the message (same clientMsgId) and resend it later.
      const seconds = Number(ack.error.retryAfter) || 1;
      state.pausedUntil = Date.now() + seconds * 1000;
    } else if (ack.error.code === "offline" || ack.error.code === "timeout") {
      // Resent with the same clientMsgId (the server stores it once) a bit later.
      markOutbox();
      state.pumpTimer = setTimeout(pump, 1000);
      renderConversation();
      return;
    } else {
      // Permanent failure: show the server's message to the user.
      state.queue = state.queue.filter((q) => q !== p);
      p.status = "failed";
      p.error = errorText(ack.error);
      failures.set(p.clientMsgId, p);
      showNotice(`Message not sent: ${errorText(ack.error)}`, "error");
    }
    pump();
    renderConversation();
  });
}

// -- live diagram panel ------------------------------------------------------------------
//
// The sequence diagram of this browser's own chat session. With `tutorial serve
// --live-trace`, a wiretap in front of the server records every byte; the server
// renders this session's events with the project's renderer and pushes the SVG on the
// /trace namespace. That namespace uses a connection of its own (forceNew), so that its
// pushes never show up in the diagram of the chat connection they describe.

const TRACE_NAMESPACE = "/trace";
const live = { socket: null };
const LIVE_IDLE_TEXT =
  "Log in: the sequence diagram of this chat session will be drawn here as it happens.";

function currentLayer() {
  return $("live-diagram").dataset.layer || "chat";
}

function liveStatus(name, text, title = "") {
  const badge = $("live-status");
  badge.dataset.state = name;
  badge.textContent = text;
  badge.title = title || "The live diagram's own connection (namespace /trace)";
}

function livePlaceholder(text) {
  $("live-message").textContent = text;
  $("live-placeholder").hidden = false;
  const box = $("live-svg");
  box.hidden = true;
  box.replaceChildren();
  delete box.dataset.layer;
  $("live-diagram-body").classList.remove("has-svg");
  $("live-meta").hidden = true;
  $("live-hint").hidden = true;
}

function liveAuth() {
  const engine = state.socket && state.socket.io.engine;
  return { eio: engine ? engine.id : null, token: state.token, layer: currentLayer() };
}

function followLive() {
  // Called on every connect-confirmed: a reconnect means a new Engine.IO session.
  if (typeof window.io !== "function") return;
  const existing = live.socket;
  if (existing && existing.connected) {
    existing.emit("follow", liveAuth(), (ack) => {
      if (!ack || !ack.ok) liveStatus("error", "not following", ack && errorText(ack.error));
    });
    return;
  }
  if (existing) existing.disconnect();
  const socket = window.io(TRACE_NAMESPACE, {
    forceNew: true,
    // WebSocket only: no polling requests, no upgrade racing a refusal (a refused
    // CONNECT closes the connection at once; a late polling request would get a 400).
    transports: ["websocket"],
    autoConnect: false,
    auth: (cb) => cb(liveAuth()),
    reconnectionAttempts: 5,
    reconnectionDelay: 1000,
  });
  live.socket = socket;
  const mine = (fn) =>
    (...args) => {
      if (live.socket === socket) fn(...args);
    };
  socket.on(
    "connect",
    mine(() => {
      liveStatus("live", "live");
      loadInspector().catch(() => {}); // ready before the first click
    }),
  );
  socket.on(
    "connect_error",
    mine((err) => {
      const data = err && err.data && typeof err.data === "object" ? err.data : {};
      if (socket.active) {
        liveStatus("waiting", "reconnecting…", err.message);
        return;
      }
      // Refused by the server: live tracing is off, or this session is not ours.
      live.socket = null;
      socket.disconnect();
      liveStatus(data.code === "live_trace_off" ? "off" : "error", "off", data.message);
      livePlaceholder(data.message || `The live diagram is unavailable: ${err.message}`);
    }),
  );
  socket.on(
    "disconnect",
    mine((reason) => liveStatus("waiting", socket.active ? "reconnecting…" : "off", reason)),
  );
  socket.on("diagram", mine(showDiagram));
  socket.on(
    "diagram-error",
    mine((d) => liveStatus("error", "render failed", d && d.message)),
  );
  liveStatus("waiting", "connecting…");
  socket.connect();
}

function stopLive() {
  closeInspector(false);
  const socket = live.socket;
  live.socket = null;
  if (socket) socket.disconnect();
  liveStatus("idle", "idle");
  livePlaceholder(LIVE_IDLE_TEXT);
}

function sanitizeSvg(root) {
  // The server's SVG holds only text the renderer escaped; this is a second lock.
  for (const node of root.querySelectorAll("script, foreignObject, iframe, object, embed")) {
    node.remove();
  }
  for (const node of [root, ...root.querySelectorAll("*")]) {
    for (const attr of [...node.attributes]) {
      const name = attr.name.toLowerCase();
      const value = attr.value.trim().toLowerCase();
      const link = name === "href" || name.endsWith(":href");
      if (name.startsWith("on") || (link && !value.startsWith("#"))) {
        node.removeAttribute(attr.name);
      }
    }
  }
  return root;
}

function showDiagram(d) {
  if (!d || d.layer !== currentLayer()) return; // pushed before the last layer switch
  if (inspecting.version !== null) {
    // The diagram holds still while an arrow of it is inspected; the newest push waits.
    inspecting.pending = d;
    inspectorNote();
    return;
  }
  const doc = new DOMParser().parseFromString(String(d.svg || ""), "image/svg+xml");
  const svg = doc.documentElement;
  if (!svg || svg.localName !== "svg" || doc.getElementsByTagName("parsererror").length) {
    liveStatus("error", "bad diagram");
    return;
  }
  sanitizeSvg(svg);
  const natural = Number.parseFloat(svg.getAttribute("width")) * (4 / 3); // pt -> px
  svg.removeAttribute("height");
  svg.setAttribute("width", "100%");
  if (natural > 0) {
    // Fit the panel's width, but never below 55 % of the size (then it scrolls sideways).
    svg.style.maxWidth = `${Math.round(natural)}px`;
    svg.style.minWidth = `${Math.round(natural * 0.55)}px`;
  }
  const body = $("live-diagram-body");
  const atBottom = body.scrollHeight - body.scrollTop - body.clientHeight < 40;
  const box = $("live-svg");
  box.replaceChildren(document.importNode(svg, true));
  box.dataset.layer = d.layer;
  box.dataset.lifeline = d.lifeline;
  box.dataset.events = String(d.events);
  box.dataset.version = String(d.version);
  box.setAttribute(
    "aria-label",
    `Sequence diagram of ${d.user}'s session, ${LAYER_NAMES[d.layer]}: ` +
      `${d.shown} of ${d.in_layer} events`,
  );
  box.hidden = false;
  $("live-placeholder").hidden = true;
  body.classList.add("has-svg");
  const meta = $("live-meta");
  const count = d.shown < d.in_layer ? `the last ${d.shown} of ${d.in_layer}` : `${d.shown}`;
  meta.textContent = `${LAYER_NAMES[d.layer]}: ${count} events · ${d.events} recorded in all layers`;
  meta.hidden = false;
  $("live-hint").hidden = false;
  if (window.TraceInspector) window.TraceInspector.prepare(box.querySelector("svg"));
  liveStatus("live", "live");
  if (atBottom || !box.dataset.scrolled) {
    body.scrollTop = body.scrollHeight;
    box.dataset.scrolled = "1";
  }
}

function setupLiveDiagram() {
  const aside = $("live-diagram");
  let layer = localStorage.getItem(LAYER_KEY);
  if (!(layer in LAYER_NAMES)) layer = "chat";
  const apply = (value) => {
    aside.dataset.layer = value;
    $("layer-name").textContent = LAYER_NAMES[value];
    localStorage.setItem(LAYER_KEY, value);
    aside.dispatchEvent(new CustomEvent("layerchange", { detail: { layer: value } }));
  };
  for (const radio of aside.querySelectorAll('input[name="layer"]')) {
    radio.checked = radio.value === layer;
    radio.addEventListener("change", () => radio.checked && apply(radio.value));
  }
  aside.addEventListener("layerchange", (event) => {
    closeInspector(false); // its rows were the other layer's; the next push redraws
    const socket = live.socket;
    if (!socket || !socket.connected) return;
    liveStatus("waiting", "drawing…");
    delete $("live-svg").dataset.scrolled;
    socket.emit("layer", { layer: event.detail.layer }, (ack) => {
      if (!ack || !ack.ok) liveStatus("error", "layer refused", ack && errorText(ack.error));
    });
  });
  apply(layer);
  stopLive();
  setupInspector();
}

// -- click-to-inspect ---------------------------------------------------------------------
//
// Click an arrow of the live diagram: the page asks the server (`inspect`, on /trace)
// for the trace inspector's document of that very diagram (the push's `version`), and
// the inspector (the same script as the notebooks' widget and the site,
// /live/inspector.js) shows the arrow's bytes, field by field, with the frames that
// carried it and the packets it carried. ◀ ▶ step through the diagram's arrows. The
// live diagram holds still meanwhile; "Back to live" shows what arrived.

const inspecting = { version: null, pending: null, ui: null };
let inspectorLoad = null;

function loadInspector() {
  if (!inspectorLoad) {
    inspectorLoad = new Promise((resolve, reject) => {
      window.TRACE_INSPECTOR_NO_AUTOMOUNT = true;
      const style = document.createElement("link");
      style.rel = "stylesheet";
      style.href = "/live/inspector.css";
      const script = document.createElement("script");
      script.src = "/live/inspector.js";
      script.onload = () => {
        window.TraceInspector.prepare($("live-svg").querySelector("svg"));
        resolve(window.TraceInspector);
      };
      script.onerror = () => {
        inspectorLoad = null;
        script.remove();
        reject(new Error("could not load the inspector (/live/inspector.js)"));
      };
      document.head.append(style, script);
    });
  }
  return inspectorLoad;
}

function inspectorNote() {
  const note = $("inspector-note");
  note.classList.toggle("inspector-note-news", inspecting.pending !== null);
  note.textContent =
    inspecting.pending !== null
      ? "New events arrived: Back to live shows them."
      : "The live diagram holds still while you inspect it. ◀ ▶ step through its arrows.";
}

async function inspectAt(target, x, y) {
  const socket = live.socket;
  const box = $("live-svg");
  if (inspecting.version !== null || !socket || !socket.connected || box.hidden) return;
  let inspector;
  try {
    inspector = await loadInspector();
  } catch (err) {
    liveStatus("error", "no inspector", err.message);
    return;
  }
  let k = inspector.rowOf(target);
  if (k === null) k = inspector.rowAt(box, x, y);
  const version = Number.parseInt(box.dataset.version, 10);
  if (k === null || !Number.isInteger(version) || inspecting.version !== null) return;
  inspecting.version = version; // hold the diagram still from now on
  inspecting.pending = null;
  liveStatus("waiting", "inspecting…");
  socket.emit("inspect", { version }, (ack) => {
    if (inspecting.version !== version || inspecting.ui) return; // closed meanwhile
    if (!ack || !ack.ok || !ack.doc) {
      closeInspector();
      liveStatus("error", "cannot inspect", ack && errorText(ack.error));
      return;
    }
    openInspector(inspector, ack.doc, k);
  });
}

function openInspector(inspector, doc, k) {
  const pane = $("inspector-pane");
  pane.hidden = false;
  pane.parentElement.classList.add("inspecting");
  inspectorNote();
  inspecting.ui = inspector.mount($("inspector-mount"), doc, {
    diagram: $("live-diagram-body"),
    view: currentLayer(),
    row: k,
  });
  $("inspector-mount").focus({ preventScroll: true });
  liveStatus("paused", "paused", "The live diagram holds still while you inspect it");
}

function closeInspector(resume = true) {
  const pending = inspecting.pending;
  if (inspecting.ui) inspecting.ui.destroy();
  inspecting.ui = null;
  inspecting.version = null;
  inspecting.pending = null;
  $("inspector-pane").hidden = true;
  $("inspector-pane").parentElement.classList.remove("inspecting");
  if (!live.socket) return;
  liveStatus("live", "live");
  if (resume && pending) showDiagram(pending);
}

function setupInspector() {
  $("live-svg").addEventListener("click", (event) => {
    if (inspecting.ui) return; // the inspector follows clicks itself
    inspectAt(event.target, event.clientX, event.clientY);
  });
  $("inspector-close").addEventListener("click", () => closeInspector());
  $("inspector-pane").addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeInspector();
  });
}

// -- start -----------------------------------------------------------------------------

function setupLogin() {
  const chips = DEMO_USERS.map((name) => {
    const chip = el("button", "chip");
    chip.type = "button";
    chip.dataset.user = name;
    chip.append(avatar(name, "tiny"), el("span", "", name));
    chip.title = `Fill in ${name} / ${name}`;
    chip.addEventListener("click", () => {
      $("username").value = name;
      $("password").value = name;
      $("login-button").focus();
    });
    return chip;
  });
  $("demo-users").replaceChildren(...chips);

  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (state.loggingIn) return;
    const username = $("username").value.trim().toLowerCase();
    const password = $("password").value;
    const error = $("login-error");
    if (!username || !password) {
      error.textContent = "Enter a user name and a password.";
      error.hidden = false;
      return;
    }
    error.hidden = true;
    resetSession();
    state.credentials = { username, password };
    state.loggingIn = true;
    $("login-button").disabled = true;
    $("login-button").textContent = "Connecting…";
    connect();
  });

  $("logout").addEventListener("click", () => {
    resetSession();
    setStatus("DISCONNECTED", "logged out");
    showLogin();
  });
}

function setupComposer() {
  const input = $("message-input");
  input.addEventListener("input", onInput);
  $("send-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    sendMessage(text);
  });
}

function start() {
  setupLogin();
  setupComposer();
  setupLiveDiagram();
  setStatus("DISCONNECTED");
  if (typeof window.io !== "function") {
    $("setup-missing").hidden = false;
    showLogin("The Socket.IO client library is missing: run make setup.");
    $("login-button").disabled = true;
    return;
  }
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) {
    // A reload: log in again with the token from connect-confirmed.
    state.token = saved;
    $("login-button").disabled = true;
    $("login-button").textContent = "Connecting…";
    state.loggingIn = true;
    connect();
  } else {
    showLogin();
  }
}

// For the live diagram (and for curious learners in the console).
window.tutorialChat = {
  get socket() {
    return state.socket;
  },
  // Per room: the contiguous lastSeq and how many gap repairs the page asked for.
  get rooms() {
    const out = {};
    for (const r of state.rooms.values()) out[r.id] = { lastSeq: r.lastSeq, held: r.seqs.size };
    return out;
  },
  get gapRepairs() {
    return gapRepairs;
  },
  get state() {
    return state.connState;
  },
  get layer() {
    return $("live-diagram").dataset.layer;
  },
};

start();
