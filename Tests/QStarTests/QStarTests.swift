import Testing
@testable import QStar
