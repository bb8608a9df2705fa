//! Every sentence a person reads in an answer, in one table. Korean is the default language, as
//! in the seed (`로그인 성공`); the stable contract is the error *code* next to the text, never
//! the text itself. A sentence about one field is shown as `field: sentence`.

/// One human-readable sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    // Success envelopes.
    SignupOk,
    LoginOk,
    ReissueOk,
    LogoutOk,
    UserFound,
    NotificationsListed,
    NotificationSent,
    NotificationMarkedRead,
    RoomCreated,
    RoomsListed,
    RoomFound,
    MemberInvited,
    AlreadyMember,
    MemberRemoved,
    RoomLeft,
    RoomMarkedRead,
    DirectRoomCreated,
    DirectRoomFound,

    // Authentication.
    AuthenticationRequired,
    BadCredentials,
    TokenExpired,
    InvalidToken,
    CredentialsRequired,
    TokenGivenTwice,

    // Errors by status.
    Forbidden,
    PathNotFound,
    MethodNotAllowed,
    RequestTimeout,
    LengthRequired,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    InternalError,
    ServiceUnavailable,
    HttpVersionNotSupported,
    MalformedHttp,
    WebSocketUpgradeRequired,
    AlreadyExists,
    UsernameTaken,
    RecipientNotFound,
    NotificationNotFound,
    RoomNotFound,
    UserNotFound,
    MemberNotFound,
    RoomExists,
    RoomFull,
    DirectWithYourself,

    // Request bodies and parameters.
    BodyNotJson,
    BodyInvalid,
    FieldRequired,
    FieldUnknown,
    FieldWrongType,
    MustBeString,
    NonNegativeInteger,
    PositiveInteger,
    LimitRange,
    BadPercentEncoding,
    TrueOrFalse,

    // Field rules.
    UsernameRule,
    PasswordRule,
    RoomIdRule,
    MessageBlank,
    MessageTooLong,
    RoomNameRule,
    RoomIdReserved,

    // Chat.
    MessageNotStored,
    RoomForbidden,
    RoomAccessRevoked,
}

impl Text {
    /// The Korean sentence.
    pub const fn ko(self) -> &'static str {
        match self {
            Text::SignupOk => "회원가입 성공",
            Text::LoginOk => "로그인 성공",
            Text::ReissueOk => "토큰 재발급 성공",
            Text::LogoutOk => "로그아웃 성공",
            Text::UserFound => "사용자 조회 성공",
            Text::NotificationsListed => "알림 목록 조회 성공",
            Text::NotificationSent => "알림 전송 성공",
            Text::NotificationMarkedRead => "알림 읽음 처리 성공",
            Text::RoomCreated => "채팅방 생성 성공",
            Text::RoomsListed => "채팅방 목록 조회 성공",
            Text::RoomFound => "채팅방 조회 성공",
            Text::MemberInvited => "멤버 초대 성공",
            Text::AlreadyMember => "이미 채팅방 멤버입니다",
            Text::MemberRemoved => "멤버 내보내기 성공",
            Text::RoomLeft => "채팅방 나가기 성공",
            Text::RoomMarkedRead => "채팅방 읽음 처리 성공",
            Text::DirectRoomCreated => "1:1 대화방 생성 성공",
            Text::DirectRoomFound => "1:1 대화방 조회 성공",

            Text::AuthenticationRequired => "인증이 필요합니다",
            Text::BadCredentials => "아이디 또는 비밀번호가 올바르지 않습니다",
            Text::TokenExpired => "토큰이 만료되었습니다",
            Text::InvalidToken => "유효하지 않은 토큰입니다",
            Text::CredentialsRequired => "username과 password가 필요합니다",
            Text::TokenGivenTwice => "토큰은 Authorization 헤더나 access_token 중 하나로만 보내야 합니다",

            Text::Forbidden => "권한이 없습니다",
            Text::PathNotFound => "요청한 경로를 찾을 수 없습니다",
            Text::MethodNotAllowed => "허용되지 않은 메서드입니다",
            Text::RequestTimeout => "요청 시간이 초과되었습니다",
            Text::LengthRequired => "Content-Length가 필요합니다 (chunked 요청 본문은 지원하지 않습니다)",
            Text::PayloadTooLarge => "요청이 너무 큽니다",
            Text::UnsupportedMediaType => "Content-Type은 application/json 이어야 합니다",
            Text::TooManyRequests => "요청이 너무 많습니다. 잠시 후 다시 시도하세요",
            Text::InternalError => "서버 내부 오류가 발생했습니다",
            Text::ServiceUnavailable => "서비스를 일시적으로 사용할 수 없습니다",
            Text::HttpVersionNotSupported => "지원하지 않는 HTTP 버전입니다",
            Text::MalformedHttp => "잘못된 HTTP 요청입니다",
            Text::WebSocketUpgradeRequired => "WebSocket 업그레이드 요청이 필요합니다",
            Text::AlreadyExists => "이미 존재합니다",
            Text::UsernameTaken => "이미 사용 중인 사용자 이름입니다",
            Text::RecipientNotFound => "받는 사용자를 찾을 수 없습니다",
            Text::NotificationNotFound => "알림을 찾을 수 없습니다",
            Text::RoomNotFound => "채팅방을 찾을 수 없습니다",
            Text::UserNotFound => "사용자를 찾을 수 없습니다",
            Text::MemberNotFound => "채팅방 멤버가 아닙니다",
            Text::RoomExists => "이미 존재하는 채팅방입니다",
            Text::RoomFull => "채팅방 인원이 가득 찼습니다",
            Text::DirectWithYourself => "자기 자신과는 1:1 대화방을 만들 수 없습니다",

            Text::BodyNotJson => "요청 본문이 올바른 JSON이 아닙니다",
            Text::BodyInvalid => "요청 본문이 올바르지 않습니다",
            Text::FieldRequired => "필수 항목입니다",
            Text::FieldUnknown => "알 수 없는 항목입니다",
            Text::FieldWrongType => "값의 형식이 올바르지 않습니다",
            Text::MustBeString => "문자열이어야 합니다",
            Text::NonNegativeInteger => "0 이상의 정수여야 합니다",
            Text::PositiveInteger => "양의 정수여야 합니다",
            Text::LimitRange => "1부터 500 사이의 정수여야 합니다",
            Text::BadPercentEncoding => "잘못된 인코딩입니다",
            Text::TrueOrFalse => "true 또는 false 여야 합니다",

            Text::UsernameRule => "username은(는) 3~32자의 영문, 숫자, _ . - 만 사용할 수 있습니다",
            Text::PasswordRule => "password은(는) 8~128자여야 합니다",
            Text::RoomIdRule => "roomId은(는) 1~64자의 영문, 숫자, _ - 만 사용할 수 있습니다",
            Text::MessageBlank => "message은(는) 비어 있거나 공백으로만 이루어질 수 없습니다",
            Text::MessageTooLong => "message은(는) 허용된 최대 글자 수를 초과할 수 없습니다",
            Text::RoomNameRule => "name은(는) 1~100자여야 하며 공백으로만 이루어질 수 없습니다",
            Text::RoomIdReserved => "roomId은(는) dm- 으로 시작할 수 없습니다 (1:1 대화방 전용)",

            Text::MessageNotStored => "메시지를 저장할 수 없습니다. 잠시 후 다시 시도하세요",
            Text::RoomForbidden => "이 채팅방에 참여할 권한이 없습니다",
            Text::RoomAccessRevoked => "이 채팅방에 참여할 권한이 없어 구독이 종료되었습니다",
        }
    }

    /// `field: sentence`, the form of every message about one field of a request.
    pub fn about(self, field: &str) -> String {
        format!("{field}: {}", self.ko())
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.ko())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_messages_name_the_field_first() {
        assert_eq!(Text::FieldRequired.about("password"), "password: 필수 항목입니다");
        assert_eq!(Text::LoginOk.to_string(), "로그인 성공");
    }
}
