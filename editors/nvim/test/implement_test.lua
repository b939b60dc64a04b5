-- Open a module with a stub, run the code action "Implement with qcode" the
-- standard way (vim.lsp.buf.code_action, the menu answered as a user would),
-- wait for the edit, check the function now passes its doctests, and that
-- progress began, reported and ended.
local H = dofile(os.getenv('QTEST_PLUGIN') .. '/test/helpers.lua')

H.run(function()
  local settings = vim.fn.json_decode(H.env('QTEST_SETTINGS'))
  local timeout = tonumber(H.env('QTEST_TIMEOUT_MS', '60000'))
  local qcode = H.setup(settings)
  local module = H.env('QTEST_MODULE')
  H.open(qcode, module)
  local before = H.buffer_text()
  H.cursor_on_stub()

  local offered = {}
  vim.ui.select = function(items, opts, on_choice)
    for i, item in ipairs(items) do
      local title = opts.format_item and opts.format_item(item) or tostring(item)
      table.insert(offered, title)
      if title == 'Implement with qcode' then
        return on_choice(item, i)
      end
    end
    on_choice(nil, nil)
  end
  vim.lsp.buf.code_action()
  H.wait(10000, function() return #offered > 0 end, 'the code action menu')
  H.result.offered = offered
  H.check(vim.tbl_contains(offered, 'Implement with qcode'), 'not offered: ' .. vim.inspect(offered))

  H.wait(timeout, function() return qcode.state.last_result ~= nil end, 'the implement to finish')
  H.result.answer = qcode.state.last_result
  H.result.notes = H.notes
  H.check(qcode.state.last_result.applied == true, 'not applied: ' .. vim.inspect(qcode.state.last_result))
  local after = H.buffer_text()
  H.result.buffer = after
  H.check(after ~= before, 'the buffer did not change')
  H.check(after:find('    ...\n', 1, true) == nil, 'the stub is still there')

  -- The function passes its tests: the doctests, run by Python on the saved buffer.
  vim.cmd('write')
  local out = vim.fn.system({ 'python3', '-m', 'doctest', '-v', module })
  H.result.doctest = out
  H.check(vim.v.shell_error == 0 and out:find('Test passed', 1, true) ~= nil, 'the doctests fail:\n' .. out)

  -- Progress: begin, at least one report, end, in that order; Neovim's own events fired as well.
  local kinds = H.progress_kinds()
  H.result.progress = qcode.state.history
  H.result.standard_progress_events = H.standard_progress
  H.check(kinds[1] == 'begin' and kinds[#kinds] == 'end', 'progress out of order: ' .. vim.inspect(kinds))
  H.check(vim.tbl_contains(kinds, 'report'), 'no progress report: ' .. vim.inspect(kinds))
  -- Not only qcode's own stages ("connecting …"): the daemon's search said what it was doing.
  local searched = false
  for _, p in ipairs(qcode.state.history) do
    local m = p.message or ''
    if p.kind == 'report' and m:find(' tried', 1, true) and m:find(' tokens', 1, true) then
      searched = true
    end
  end
  H.check(searched, 'no report of the search (programs tried, tokens): ' .. vim.inspect(qcode.state.history))
  H.check(H.standard_progress >= #kinds, 'Neovim progress events: ' .. H.standard_progress)
  H.check(qcode.status() == '', 'the statusline still shows a search: ' .. qcode.status())
end)
