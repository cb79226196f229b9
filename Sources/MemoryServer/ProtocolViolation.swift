import MemoryDomain
import MemoryWire

/// Why a connection was closed for breaking the protocol (PROTOCOL.md), the `kind` of
/// `memoryd_protocol_violations_total`.
enum ProtocolViolation: String, CaseIterable, Sendable {
    case frameTooLarge = "frame_too_large"
    case zeroLengthFrame = "zero_length_frame"
    case undecodableFrame = "undecodable_frame"
    case nestingTooDeep = "nesting_too_deep"
    case emptyFrame = "empty_frame"
    case requestIDZero = "request_id_zero"
    case duplicateRequestID = "duplicate_request_id"
    case responseFromClient = "response_from_client"

    /// The GoAway's code: RESOURCE_EXHAUSTED for a frame over the size limit, INVALID_ARGUMENT otherwise.
    var code: StatusCode { self == .frameTooLarge ? .resourceExhausted : .invalidArgument }

    init(_ failure: FrameReassembler.Failure) {
        switch failure {
        case .zeroLength: self = .zeroLengthFrame
        case .tooLarge: self = .frameTooLarge
        }
    }

    init(_ error: FrameCodec.DecodeError) {
        switch error {
        case .undecodable: self = .undecodableFrame
        case .tooDeep: self = .nestingTooDeep
        case .emptyFrame: self = .emptyFrame
        }
    }
}
