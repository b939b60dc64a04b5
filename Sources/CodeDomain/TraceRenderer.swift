import QStar
/// Renders an explored tree as a self-contained HTML page: each node's step,
/// f, g, h, and the verifier's verdict, nested under its parent, in the order
/// the search expanded them.
public enum TraceRenderer {
    public static func html(title: String, subtitle: String, nodes: [TraceNode]) -> String {
        var children: [Int: [Int]] = [:]
        for n in nodes { if let p = n.parent { children[p, default: []].append(n.id) } }
        var body = ""
        func render(_ id: Int) {
            let n = nodes[id]
            var classes: [String] = []
            if n.expandedAt != nil { classes.append("expanded") }
            if let v = n.verification { classes.append(v.reward == 1 ? "pass" : "fail") }
            if n.reward < 0 { classes.append("broken") }
            let verdict = n.verification.map { " <b>\($0.outcome) \($0.passed)/\($0.total)</b>" } ?? ""
            let order = n.expandedAt.map { "#\($0) " } ?? ""
            let count = n.count > 1 ? " ×\(n.count)" : ""
            body += "<li class=\"\(classes.joined(separator: " "))\"><span class=\"meta\">\(order)f=\(fmt(n.f)) g=\(fmt(n.g)) h=\(fmt(n.h))\(count)</span> "
            body += "<code>\(escape(n.action.isEmpty ? "(root)" : n.action))</code>\(verdict)"
            if let program = n.detail {
                body += "<details><summary>program</summary><pre>\(escape(program))</pre></details>"
            }
            if let kids = children[id], !kids.isEmpty {
                body += "<ul>"
                for k in kids { render(k) }
                body += "</ul>"
            }
            body += "</li>"
        }
        if !nodes.isEmpty { render(0) }
        return """
        <!doctype html><html><head><meta charset="utf-8"><title>\(escape(title))</title><style>
        body{font-family:system-ui,sans-serif;margin:2em}pre{background:#f6f6f6;padding:.5em;margin:.3em 0}ul{list-style:none;padding-left:1.4em;border-left:1px solid #ddd}
        code{white-space:pre-wrap;background:#f6f6f6;padding:0 .3em}.meta{color:#888;font-size:.8em}
        .expanded>code{background:#e8f0ff}.pass>code{background:#d4f7d4}.fail>code{background:#fde2e2}.broken>code{text-decoration:line-through}
        </style></head><body><h1>\(escape(title))</h1><p>\(escape(subtitle))</p>
        <p class="meta">\(nodes.count) nodes, \(nodes.filter { $0.expandedAt != nil }.count) expanded. Blue: expanded; green: passed the visible tests; red: failed; struck through: broken syntax.</p>
        <ul>\(body)</ul></body></html>
        """
    }

    static func fmt(_ x: Double) -> String {
        guard x.isFinite else { return String(x) }
        let scaled = (x * 1000).rounded() / 1000
        return String(scaled)
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}
