package chat

// IsKeyword reports whether body is one of the opt-out or help keywords carriers and Twilio answer
// themselves (STOP, HELP, …): the messaging webhook never answers one, even with a text for numbers
// that never had a chat.
func IsKeyword(body string) bool { return keyword(body) }
