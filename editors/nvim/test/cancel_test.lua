-- Start an implement with the mapped key against a model that never answers,
-- cancel it with :QcodeCancel, and check the daemon's search stopped and the
-- buffer was left alone.
local H = dofile(os.getenv('QTEST_PLUGIN') .. '/test/helpers.lua')

local function lines(path)
  local f = io.open(path)
  if not f then return 0 end
  local n = 0
  for _ in f:lines() do n = n + 1 end
  f:close()
  return n
end

H.run(function()
  local qcode = H.setup(vim.fn.json_decode(H.env('QTEST_SETTINGS')))
  local module = H.env('QTEST_MODULE')
  local requests = H.env('QTEST_FAKE_LOG')
  H.open(qcode, module)
  local before = H.buffer_text()
  H.cursor_on_stub()

  -- The key the plugin maps (<leader>qi, leader = space).
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes('<leader>qi', true, false, true), 'x', false)
  H.wait(10000, function() return vim.tbl_contains(H.progress_kinds(), 'begin') end, 'progress to begin')
  H.check(qcode.status():find('^qcode: ') ~= nil, 'no search in the statusline: ' .. qcode.status())
  -- The daemon's search is waiting on the model: the scripted endpoint got its request.
  H.wait(60000, function() return lines(requests) >= 1 end, 'the search to call the model')
  local status = H.daemon_status()
  H.result.before_cancel = status
  H.check(status.solves_running == 1, 'no search running in the daemon: ' .. vim.inspect(status))

  local started = vim.loop.hrtime()
  vim.cmd('QcodeCancel')
  H.wait(10000, function() return qcode.state.last_cancel ~= nil end, ':QcodeCancel to answer')
  H.result.cancel_ms = (vim.loop.hrtime() - started) / 1e6
  H.result.cancel = qcode.state.last_cancel
  H.check(qcode.state.last_cancel.cancelled == 1, 'cancelled: ' .. vim.inspect(qcode.state.last_cancel))
  -- Answered once the search stopped: the daemon runs nothing now.
  status = H.daemon_status()
  H.result.after_cancel = status
  H.check(status.solves_running == 0 and status.solves_waiting == 0, 'the daemon still searches: ' .. vim.inspect(status))

  H.wait(5000, function() return qcode.state.last_result ~= nil end, 'the implement to end')
  H.result.answer = qcode.state.last_result
  H.check(qcode.state.last_result.cancelled == true and qcode.state.last_result.applied == false,
    'the implement: ' .. vim.inspect(qcode.state.last_result))
  local history = qcode.state.history
  H.result.progress = history
  H.check(history[#history].kind == 'end' and history[#history].message == 'cancelled', 'progress: ' .. vim.inspect(history))
  H.check(H.buffer_text() == before, 'the buffer changed')
  H.check(lines(requests) == 1, 'the model was called again after the cancel')
  H.check(qcode.status() == '', 'the statusline still shows a search')

  -- Nothing left to cancel: said so, no error.
  qcode.state.last_cancel = nil
  vim.cmd('QcodeCancel')
  H.wait(5000, function() return qcode.state.last_cancel ~= nil end, 'the second :QcodeCancel')
  H.check(qcode.state.last_cancel.cancelled == 0, 'second cancel: ' .. vim.inspect(qcode.state.last_cancel))
end)
