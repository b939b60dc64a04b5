-- Shared by the headless Neovim tests: run by the Swift suite EditorTests as
--   nvim --headless -u NONE -i NONE -n -c "luafile editors/nvim/test/NAME.lua"
-- with QTEST_* variables saying where things are. The exit status is the
-- verdict (0 pass, 1 fail); QTEST_RESULT gets a JSON record of what was seen.
local H = { result = {} }

function H.env(name, default)
  local v = os.getenv(name)
  if v == nil or v == '' then
    return default
  end
  return v
end

function H.write()
  -- Everything Neovim said (deprecation warnings included), for whoever reads a failure.
  H.result.messages = vim.fn.execute('messages')
  local f = assert(io.open(H.env('QTEST_RESULT'), 'w'))
  f:write(vim.fn.json_encode(H.result))
  f:close()
end

function H.fail(message)
  H.result.error = message
  pcall(H.write)
  io.stderr:write('FAIL: ' .. message .. '\n')
  vim.cmd('cquit 1')
end

function H.check(condition, message)
  if not condition then
    H.fail(message)
  end
end

--- Waits (processing events, so LSP messages arrive) until `predicate` holds.
function H.wait(ms, predicate, what)
  if not vim.wait(ms, predicate, 20) then
    H.fail('timed out after ' .. ms .. ' ms waiting for ' .. what)
  end
end

--- Runs `body` and exits: 0 when it finished, 1 with the error otherwise.
function H.run(body)
  local ok, err = xpcall(body, debug.traceback)
  if not ok then
    H.fail(tostring(err))
  end
  H.result.ok = true
  H.write()
  vim.cmd('qall!')
end

--- The plugin from this checkout, set up for Python buffers with `settings`.
function H.setup(settings)
  vim.opt.runtimepath:append(H.env('QTEST_PLUGIN'))
  vim.g.mapleader = ' '
  vim.cmd('filetype on')
  local qcode = require('qcode')
  qcode.setup({ cmd = { H.env('QTEST_QCODE'), 'lsp' }, settings = settings, keymap = '<leader>qi' })
  -- Neovim's own progress events, which statusline plugins use: they must fire too.
  H.standard_progress = 0
  _G.qtest_standard_progress = function() H.standard_progress = H.standard_progress + 1 end
  vim.cmd('autocmd User LspProgressUpdate lua qtest_standard_progress()')
  pcall(vim.cmd, 'autocmd LspProgress * lua qtest_standard_progress()')
  -- qcode's messages, as the user would read them.
  H.notes = {}
  vim.notify = function(message, level) table.insert(H.notes, { message = message, level = level }) end
  return qcode
end

--- Opens the module and waits for the qcode client to be attached and initialized.
function H.open(qcode, path, timeout)
  vim.cmd('edit ' .. vim.fn.fnameescape(path))
  H.check(vim.bo.filetype == 'python', 'the module is not a Python buffer')
  H.wait(timeout or 20000, function()
    local client = qcode.client()
    return client ~= nil and client.initialized == true
  end, 'qcode lsp to attach to the buffer')
  H.result.lsp_pids = H.children('lsp')
end

--- Pids of this Neovim's children whose command line contains `word`.
function H.children(word)
  local found = {}
  local me = tostring(vim.fn.getpid())
  for _, name in ipairs(vim.fn.readdir('/proc')) do
    if name:match('^%d+$') then
      local stat = io.open('/proc/' .. name .. '/stat')
      local text = stat and stat:read('*a') or ''
      if stat then stat:close() end
      local ppid = text:match('^%d+ %b() %a (%d+)')
      if ppid == me then
        local f = io.open('/proc/' .. name .. '/cmdline')
        local cmdline = f and f:read('*a') or ''
        if f then f:close() end
        if cmdline:find(word, 1, true) then
          table.insert(found, tonumber(name))
        end
      end
    end
  end
  return found
end

function H.buffer_text()
  return table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n') .. '\n'
end

--- Puts the cursor on the stub's `...` line.
function H.cursor_on_stub()
  local line = vim.fn.search('^    \\.\\.\\.$', 'w')
  H.check(line > 0, 'no stub line in the buffer')
  vim.api.nvim_win_set_cursor(0, { line, 4 })
end

--- `qcode status --json` of the daemon this test's qcode lsp started.
function H.daemon_status()
  local out = vim.fn.system({ H.env('QTEST_QCODE'), 'status', '--json' })
  H.check(vim.v.shell_error == 0, 'qcode status failed: ' .. out)
  return vim.fn.json_decode(out)
end

--- The progress values the plugin saw, by kind.
function H.progress_kinds()
  local kinds = {}
  for _, p in ipairs(require('qcode').state.history) do
    table.insert(kinds, p.kind)
  end
  return kinds
end

return H
