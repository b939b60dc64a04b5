import CCurl
import Foundation
import Synchronization

/// The status and body of one HTTP exchange.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var body: Data
    public init(status: Int, body: Data) {
        self.status = status
        self.body = body
    }
}

/// Transport-level failures, before any HTTP status exists.
public enum TransportError: Error, Sendable, Equatable {
    case couldNotConnect(String)
    case timedOut(seconds: Double)
    /// The server took the request, then the connection broke before a whole
    /// answer arrived (a reset, an empty reply, a body shorter than its length).
    case connectionLost(String)
    case cancelled
    case other(code: Int, message: String)
}

/// The seam between the LLM clients and the network, so protocol handling can
/// be tested against scripted servers and the real transport swapped freely.
public protocol HTTPTransport: Sendable {
    func post(_ url: URL, json body: Data, timeout: Double) async throws -> HTTPResponse
    func get(_ url: URL, timeout: Double) async throws -> HTTPResponse
}

/// libcurl easy handles run on their own threads: a completion call can take
/// seconds, and blocking Swift's cooperative pool (2 threads here) would stall
/// every other task in the process.
public struct CurlTransport: HTTPTransport {
    public init() { _ = CurlTransport.globalInit }

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    public func post(_ url: URL, json body: Data, timeout: Double) async throws -> HTTPResponse {
        try await perform(url: url, body: body, timeout: timeout)
    }

    public func get(_ url: URL, timeout: Double) async throws -> HTTPResponse {
        try await perform(url: url, body: nil, timeout: timeout)
    }

    private func perform(url: URL, body: Data?, timeout: Double) async throws -> HTTPResponse {
        let transfer = Transfer()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<HTTPResponse, Error>) in
                Thread.detachNewThread {
                    cont.resume(with: transfer.run(url: url, body: body, timeout: timeout))
                }
            }
        } onCancel: {
            transfer.cancel()
        }
    }
}

/// State shared between the curl thread and the canceller. The progress
/// callback polls `cancelled`, so a cancelled task aborts its transfer within
/// curl's callback interval instead of waiting for the server.
private final class Transfer: Sendable {
    private let cancelled = Atomic<Bool>(false)
    private let received = Mutex<Data>(Data())

    func cancel() { cancelled.store(true, ordering: .relaxed) }
    var isCancelled: Bool { cancelled.load(ordering: .relaxed) }
    func append(_ bytes: UnsafeRawBufferPointer) { received.withLock { $0.append(contentsOf: bytes) } }

    func run(url: URL, body: Data?, timeout: Double) -> Result<HTTPResponse, Error> {
        if isCancelled { return .failure(TransportError.cancelled) }
        guard let handle = curl_easy_init() else {
            return .failure(TransportError.other(code: -1, message: "curl_easy_init failed"))
        }
        defer { curl_easy_cleanup(handle) }
        var headers: UnsafeMutablePointer<curl_slist>? = nil
        headers = curl_slist_append(headers, "Content-Type: application/json")
        headers = curl_slist_append(headers, "Expect:")
        defer { curl_slist_free_all(headers) }

        let unmanaged = Unmanaged.passRetained(self)
        defer { unmanaged.release() }
        let me = unmanaged.toOpaque()

        _ = qcode_curl_set_string(handle, CURLOPT_URL, url.absoluteString)
        _ = qcode_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
        _ = qcode_curl_set_long(handle, CURLOPT_TIMEOUT_MS, Int(timeout * 1000))
        _ = qcode_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(min(timeout, 5) * 1000))
        _ = qcode_curl_set_slist(handle, CURLOPT_HTTPHEADER, headers)
        _ = qcode_curl_set_write_function(handle) { ptr, size, count, user in
            let transfer = Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue()
            if transfer.isCancelled { return 0 }
            let n = size * count
            if let ptr { transfer.append(UnsafeRawBufferPointer(start: ptr, count: n)) }
            return n
        }
        _ = qcode_curl_set_pointer(handle, CURLOPT_WRITEDATA, me)
        _ = qcode_curl_set_long(handle, CURLOPT_NOPROGRESS, 0)
        _ = qcode_curl_set_progress_function(handle) { user, _, _, _, _ in
            Unmanaged<Transfer>.fromOpaque(user!).takeUnretainedValue().isCancelled ? 1 : 0
        }
        _ = qcode_curl_set_pointer(handle, CURLOPT_XFERINFODATA, me)

        let code: CURLcode = body.map { body in
            body.withUnsafeBytes { raw in
                _ = qcode_curl_set_long(handle, CURLOPT_POST, 1)
                _ = qcode_curl_set_long(handle, CURLOPT_POSTFIELDSIZE, raw.count)
                _ = qcode_curl_set_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress))
                return curl_easy_perform(handle)
            }
        } ?? curl_easy_perform(handle)

        if isCancelled { return .failure(TransportError.cancelled) }
        switch code {
        case CURLE_OK:
            var status = 0
            _ = qcode_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &status)
            return .success(HTTPResponse(status: status, body: received.withLock { $0 }))
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST:
            return .failure(TransportError.couldNotConnect(url.absoluteString))
        case CURLE_OPERATION_TIMEDOUT:
            return .failure(TransportError.timedOut(seconds: timeout))
        case CURLE_PARTIAL_FILE, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_SEND_ERROR:
            return .failure(TransportError.connectionLost(String(cString: curl_easy_strerror(code))))
        case CURLE_ABORTED_BY_CALLBACK:
            return .failure(TransportError.cancelled)
        default:
            let message = String(cString: curl_easy_strerror(code))
            return .failure(TransportError.other(code: Int(code.rawValue), message: message))
        }
    }
}
