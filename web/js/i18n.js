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
    'rooms.title': '채팅방',
    'rooms.open': '방 열기',
    'rooms.openPlaceholder': '방 ID 입력 후 Enter (예: room-1)',
    'rooms.create': '새 방 만들기',
    'rooms.invalid': '방 ID는 1~64자의 영문, 숫자, _ - 만 쓸 수 있습니다',
    'rooms.empty': '아직 방이 없습니다',
    'rooms.unread': '안 읽은 메시지 {n}개',
    'kind.private': '비공개',
    'kind.public': '공개',
    'kind.dm': '1:1',
    'kind.open': '열린 방',
    'create.name': '방 이름',
    'create.namePlaceholder': '예: 팀 채널',
    'create.id': '방 ID',
    'create.idPlaceholder': '영문, 숫자, _ - (예: team)',
    'create.private': '비공개 (초대한 사람만 볼 수 있음)',
    'create.submit': '만들기',
    'create.cancel': '취소',
    'create.nameRule': '방 이름은 1~100자여야 하며 공백만으로 지을 수 없습니다',
    'create.reserved': "'dm-'으로 시작하는 ID는 1:1 대화방 전용입니다",
    'create.taken': '이미 쓰이는 방 ID입니다 (만들어진 방이거나 메시지가 있는 열린 방)',
    'dm.title': '1:1 대화',
    'dm.placeholder': '상대 아이디',
    'dm.open': '열기',
    'dm.self': '자기 자신과는 1:1 대화를 열 수 없습니다',
    'dm.invalid': '아이디는 3~32자의 영문, 숫자, _ . - 입니다',
    'user.notFound': '없는 사용자입니다: {name}',
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
    'room.leave': '방 나가기',
    'room.invite': '초대',
    'room.invitePlaceholder': '초대할 아이디',
    'room.members': '멤버 {n}명',
    'room.owner': '방장',
    'room.remove': '{name}님 내보내기',
    'room.notOwner': '방장만 할 수 있습니다',
    'room.full': '방 인원이 가득 찼습니다',
    'room.denied': '이 방을 열 수 없습니다. 없는 방이거나, 초대받지 않은 비공개 방입니다.',
    'room.forbidden': '이 방에 참여할 권한이 없어졌습니다. 방장이 내보냈거나 방이 비공개로 바뀌었습니다.',
    'room.left': '방에서 나갔습니다.',
    'error.generic': '요청을 처리하지 못했습니다 ({code})',
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
    'rooms.title': 'Rooms',
    'rooms.open': 'Open a room',
    'rooms.openPlaceholder': 'Room id, then Enter (e.g. room-1)',
    'rooms.create': 'New room',
    'rooms.invalid': 'A room id is 1–64 letters, digits, _ or -',
    'rooms.empty': 'No rooms yet',
    'rooms.unread': '{n} unread',
    'kind.private': 'private',
    'kind.public': 'public',
    'kind.dm': 'direct',
    'kind.open': 'open room',
    'create.name': 'Name',
    'create.namePlaceholder': 'e.g. Team',
    'create.id': 'Room id',
    'create.idPlaceholder': 'letters, digits, _ - (e.g. team)',
    'create.private': 'Private (only invited people see it)',
    'create.submit': 'Create',
    'create.cancel': 'Cancel',
    'create.nameRule': 'A name is 1–100 characters, not only spaces',
    'create.reserved': 'Ids starting with "dm-" are reserved for direct messages',
    'create.taken': 'That room id is taken (a created room, or an open room with messages)',
    'dm.title': 'Direct message',
    'dm.placeholder': 'Username',
    'dm.open': 'Open',
    'dm.self': 'You cannot open a direct message with yourself',
    'dm.invalid': 'A username is 3–32 letters, digits, _ . -',
    'user.notFound': 'No such user: {name}',
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
    'room.leave': 'Leave room',
    'room.invite': 'Invite',
    'room.invitePlaceholder': 'Username to invite',
    'room.members': '{n} members',
    'room.owner': 'owner',
    'room.remove': 'Remove {name}',
    'room.notOwner': 'Only the owner can do that',
    'room.full': 'The room is full',
    'room.denied': 'This room cannot be opened: it does not exist, or it is a private room you were not invited to.',
    'room.forbidden': 'You no longer have access to this room: the owner removed you, or it became private.',
    'room.left': 'You left the room.',
    'error.generic': 'The request failed ({code})',
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
