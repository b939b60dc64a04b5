import Testing
@testable import CodeDomain
