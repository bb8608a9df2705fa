// The page's text in Korean (the default, as in the seed) and English.
// Static elements name their string with data-i18n / data-i18n-placeholder; code calls t().

const STRINGS = {
  ko: {
    'lang.other': 'English',
    logout: '로그아웃',
    'auth.title': '로그인',
    'auth.username': '아이디',
    'auth.password': '비밀번호',
    'auth.login': '로그인',
    'auth.signup': '회원가입',
    'auth.hint': '개발 모드 사용자: alice / alicepass, bob / bobpass',
    'auth.required': '아이디와 비밀번호를 입력하세요',
    'auth.signupRules': '아이디는 3~32자의 영문, 숫자, _ . -, 비밀번호는 8~128자여야 합니다',
    'auth.expired': '세션이 만료되었습니다. 다시 로그인하세요',
    'rooms.title': '최근 방',
    'rooms.open': '방 열기',
    'rooms.openPlaceholder': '방 ID 입력 후 Enter (예: room-1)',
    'rooms.create': '새 방 만들기',
    'rooms.createHint': '새 방의 ID를 입력하고 Enter를 누르세요',
    'rooms.invalid': '방 ID는 1~64자의 영문, 숫자, _ - 만 쓸 수 있습니다',
    'rooms.empty': '아직 연 방이 없습니다',
    'room.none': '방을 선택하세요',
    'room.older': '이전 메시지 불러오기',
    'room.loading': '불러오는 중…',
    'room.empty': '아직 메시지가 없습니다',
    'room.start': '대화의 시작입니다',
    'room.placeholder': '메시지를 입력하세요 (@이름 으로 멘션)',
    'room.send': '보내기',
    'room.pending': '전송 중',
    'room.failed': '전송 실패',
    'room.retry': '다시 보내기',
    'room.discard': '취소',
    'room.loadFailed': '메시지를 불러오지 못했습니다',
    'conn.connected': '연결됨',
    'conn.connecting': '연결 중…',
    'conn.reconnecting': '연결이 끊겼습니다. 다시 연결하는 중…',
    'notifications.title': '알림',
    'notifications.empty': '알림이 없습니다',
    'notifications.mention': '{sender}님이 {room}에서 회원님을 언급했습니다',
    'notifications.direct': '{sender}님의 알림',
    'error.network': '서버에 연결할 수 없습니다',
  },
  en: {
    'lang.other': '한국어',
    logout: 'Log out',
    'auth.title': 'Log in',
    'auth.username': 'Username',
    'auth.password': 'Password',
    'auth.login': 'Log in',
    'auth.signup': 'Sign up',
    'auth.hint': 'Dev-mode users: alice / alicepass, bob / bobpass',
    'auth.required': 'Enter a username and a password',
    'auth.signupRules': 'Usernames are 3–32 letters, digits, _ . -; passwords 8–128 characters',
    'auth.expired': 'Your session has expired. Please log in again',
    'rooms.title': 'Recent rooms',
    'rooms.open': 'Open a room',
    'rooms.openPlaceholder': 'Room id, then Enter (e.g. room-1)',
    'rooms.create': 'New room',
    'rooms.createHint': 'Type the new room’s id and press Enter',
    'rooms.invalid': 'A room id is 1–64 letters, digits, _ or -',
    'rooms.empty': 'No rooms opened yet',
    'room.none': 'Pick a room',
    'room.older': 'Load older messages',
    'room.loading': 'Loading…',
    'room.empty': 'No messages yet',
    'room.start': 'This is the start of the conversation',
    'room.placeholder': 'Write a message (@name mentions)',
    'room.send': 'Send',
    'room.pending': 'sending',
    'room.failed': 'not sent',
    'room.retry': 'Retry',
    'room.discard': 'Discard',
    'room.loadFailed': 'Could not load the messages',
    'conn.connected': 'Connected',
    'conn.connecting': 'Connecting…',
    'conn.reconnecting': 'Connection lost. Reconnecting…',
    'notifications.title': 'Notifications',
    'notifications.empty': 'No notifications',
    'notifications.mention': '{sender} mentioned you in {room}',
    'notifications.direct': 'From {sender}',
    'error.network': 'Cannot reach the server',
  },
};

const LANG_KEY = 'herald.lang';
const listeners = new Set();

function initialLang() {
  const fromQuery = new URLSearchParams(location.search).get('lang');
  if (fromQuery && STRINGS[fromQuery]) return fromQuery;
  const stored = localStorage.getItem(LANG_KEY);
  return stored && STRINGS[stored] ? stored : 'ko';
}

let lang = initialLang();

/** The current language code. */
export function currentLang() {
  return lang;
}

/** The string `key` in the current language, with `{name}` replaced from `params`. */
export function t(key, params = {}) {
  const text = STRINGS[lang][key] ?? STRINGS.ko[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** Fills every data-i18n / data-i18n-placeholder element under `root`. */
export function applyStatic(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
}

/** Switches the language, remembers it, and re-renders static and dynamic text. */
export function setLang(next) {
  if (!STRINGS[next]) return;
  lang = next;
  localStorage.setItem(LANG_KEY, next);
  applyStatic();
  for (const fn of listeners) fn(lang);
}

/** The other language (the toggle's target). */
export function otherLang() {
  return lang === 'ko' ? 'en' : 'ko';
}

/** Calls `fn` after every language change (to re-render dynamic text). */
export function onLangChange(fn) {
  listeners.add(fn);
}
