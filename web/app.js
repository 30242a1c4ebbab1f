// Parley's web client: signs in over the HTTP API, then speaks MQTT over WebSocket (/mqtt) with the token.
// Everything it does is what PROTOCOL.md promises any client.
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const state = { user: null, token: null, client: null, peer: null, seen: new Set(), pending: new Map(), receipts: new Map(), sentReceipts: new Set(), cid: 0 };
  const RANK = { delivered: 1, read: 2 };

  async function api(path, { method = 'GET', body, token } = {}) {
    const headers = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const data = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) throw new Error((data && data.error && data.error.message) || `HTTP ${res.status}`);
    return data;
  }

  function setStatus(text, s) {
    $('status').textContent = text;
    $('status').dataset.state = s;
  }

  function conversationPeer(m) {
    return m.from === state.user ? m.to : m.from;
  }

  /** A receipt state moves forward only (delivered → read), whichever arrives first. */
  function markState(id, st) {
    const was = state.receipts.get(id);
    if (!RANK[st] || (was && RANK[was] >= RANK[st])) return;
    state.receipts.set(id, st);
    const li = document.querySelector(`#messages li.mine[data-id="${CSS.escape(id)}"]`);
    if (li) li.dataset.state = st;
  }

  /** Tells the sender of a message that it reached this user (`delivered`) or was seen (`read`). */
  function receipt(m, st) {
    // Once per message and state: reopening a conversation before the archive has the last receipts sends none again.
    const sent = `${m.id} ${st}`;
    if (RANK[m.state] >= RANK[st] || state.sentReceipts.has(sent)) return;
    state.sentReceipts.add(sent);
    state.client.publish(`send/user/${m.from}`, JSON.stringify({ cid: `r${Date.now()}${state.cid++}`, kind: 'receipt', ref: m.id, state: st }), { qos: 1 });
  }

  const onScreen = (m) => conversationPeer(m) === state.peer && !m.group && document.visibilityState === 'visible';

  function show(m) {
    if (state.seen.has(m.id)) return; // redelivery keeps the id; show each message once
    state.seen.add(m.id);
    if (m.kind === 'receipt' || m.group || conversationPeer(m) !== state.peer) return;
    const li = document.createElement('li');
    li.className = m.from === state.user ? 'mine' : 'theirs';
    li.dataset.id = m.id;
    if (m.from === state.user && m.state) markState(m.id, m.state);
    const st = state.receipts.get(m.id);
    if (m.from === state.user && st) li.dataset.state = st;
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = `${m.from} · ${new Date(m.ts).toLocaleTimeString()}`;
    const body = document.createElement('div');
    body.className = 'body';
    body.textContent = m.body || (m.attachment ? `📎 ${m.attachment.name}` : '');
    li.append(meta, body);
    const list = $('messages');
    const after = [...list.children].find((x) => BigInt(x.dataset.id) > BigInt(m.id));
    list.insertBefore(li, after || null);
    list.scrollTop = list.scrollHeight;
  }

  async function openConversation(peer) {
    state.peer = peer;
    $('peer-title').textContent = peer;
    $('messages').replaceChildren();
    state.seen.clear();
    state.client.subscribe(`presence/${peer}`, { qos: 0 });
    const page = await api(`/v1/conversations/user/${encodeURIComponent(peer)}/messages?limit=50`, { token: state.token });
    page.messages.reverse().forEach(show);
    // What the peer sent that this user has not read yet is read now.
    for (const m of page.messages) if (m.from === peer && m.kind !== 'receipt') receipt(m, 'read');
  }

  async function loadConversations() {
    const { conversations } = await api('/v1/conversations', { token: state.token });
    const ul = $('conversations');
    ul.replaceChildren(
      ...conversations.filter((c) => c.type === 'user').map((c) => {
        const li = document.createElement('li');
        li.textContent = c.id;
        li.onclick = () => openConversation(c.id);
        return li;
      }),
    );
  }

  function connect() {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/mqtt`;
    const client = mqtt.connect(url, { username: state.user, password: state.token, clientId: `web-${state.user}-${Math.random().toString(36).slice(2, 10)}`, clean: true });
    state.client = client;
    client.on('connect', () => {
      setStatus(`${state.user} · online`, 'online');
      client.subscribe(`inbox/${state.user}`, { qos: 1 });
    });
    client.on('close', () => setStatus(`${state.user} · reconnecting`, 'offline'));
    client.on('message', (topic, payload) => {
      let m;
      try {
        m = JSON.parse(payload.toString());
      } catch {
        return;
      }
      if (topic.startsWith('presence/')) {
        if (m.user === state.peer) $('peer-presence').textContent = m.state === 'online' ? 'online' : `last seen ${new Date(m.ts).toLocaleString()}`;
        return;
      }
      if (m.kind === 'ack') {
        const sent = state.pending.get(m.cid);
        state.pending.delete(m.cid);
        if (sent) show({ ...sent, id: m.id, ts: m.ts, from: state.user });
      } else if (m.kind === 'error') {
        $('send-error').textContent = `${m.code}: ${m.message}`;
      } else if (m.kind === 'typing') {
        // not shown in this small client
      } else if (m.kind === 'receipt') {
        // The peer's receipt for a message of this user's (a receipt is never answered with one).
        if (m.from !== state.user) markState(m.ref, m.state);
      } else {
        const fresh = !state.seen.has(m.id);
        show(m);
        if (fresh && m.from !== state.user && !m.group) {
          receipt(m, 'delivered'); // what the delivery-latency metrics count
          if (onScreen(m)) receipt(m, 'read');
        }
      }
    });
  }

  async function signIn(username, password) {
    const { token } = await api('/v1/auth/login', { method: 'POST', body: { username, password } });
    Object.assign(state, { user: username, token });
    $('signin').hidden = true;
    $('chat').hidden = false;
    connect();
    await loadConversations();
  }

  $('login-form').onsubmit = async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    try {
      await signIn(f.get('username'), f.get('password'));
    } catch (err) {
      $('signin-error').textContent = err.message;
    }
  };
  $('register').onclick = async () => {
    const f = new FormData($('login-form'));
    try {
      await api('/v1/auth/register', { method: 'POST', body: { username: f.get('username'), password: f.get('password') } });
      await signIn(f.get('username'), f.get('password'));
    } catch (err) {
      $('signin-error').textContent = err.message;
    }
  };
  $('open-form').onsubmit = (e) => {
    e.preventDefault();
    openConversation(new FormData(e.target).get('peer')).catch((err) => ($('send-error').textContent = err.message));
  };
  $('send-form').onsubmit = (e) => {
    e.preventDefault();
    if (!state.peer) return;
    const input = e.target.elements.body;
    const cid = `w${Date.now().toString(36)}${state.cid++}`;
    const message = { cid, kind: 'text', body: input.value, to: state.peer };
    state.pending.set(cid, message);
    state.client.publish(`send/user/${state.peer}`, JSON.stringify({ cid, kind: 'text', body: input.value }), { qos: 1 });
    input.value = '';
  };
})();
