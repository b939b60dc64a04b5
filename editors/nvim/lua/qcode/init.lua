-- qcode for Neovim: starts `qcode lsp` for Python buffers, maps a key to
-- "Implement with qcode", shows the search's progress and offers :QcodeCancel.
--
--   require('qcode').setup{ settings = { method = 'qstar', budget_tokens = 1500 } }
--
-- Works on Neovim 0.7 (vim.lsp.start_client + buf_attach_client, `User
-- LspProgressUpdate`) and on 0.11 (vim.lsp.config + vim.lsp.enable, `LspProgress`).
-- Everything qcode itself knows is set in `settings` (the keys of `qcode solve
-- --help` and `qcode config --help`); see docs/editors.md.
local M = {}

M.defaults = {
  -- The server command; `qcode` must be on PATH, or give its full path.
  cmd = { 'qcode', 'lsp' },
  filetypes = { 'python' },
  root_markers = { 'pyproject.toml', 'setup.py', 'setup.cfg', '.git' },
  -- qcode's settings, sent as initializationOptions and workspace/didChangeConfiguration.
  settings = {},
  -- Normal-mode key for "Implement with qcode" on the function under the cursor (false: none).
  keymap = '<leader>qi',
  -- vim.notify when an implement starts and ends (messages qcode sends are always shown).
  notify = true,
}

M.config = vim.deepcopy(M.defaults)

-- What the plugin saw, for statuslines and tests.
M.state = {
  client_id = nil,
  -- token -> { title, message, percentage, done }
  progress = {},
  -- every progress value in order: { token, kind, title, message, percentage }
  history = {},
  -- messages qcode showed: { type, message }
  messages = {},
  -- the answer to the last qcode.implement / qcode.cancel
  last_result = nil,
  last_cancel = nil,
}

local has_011 = vim.fn.has('nvim-0.11') == 1

-- Client methods: `client:request(…)` from 0.11, `client.request(…)` before it.
local function call(client, method, ...)
  if has_011 then
    return client[method](client, ...)
  end
  return client[method](...)
end

local function notify(message, level)
  vim.notify(message, level or vim.log.levels.INFO, { title = 'qcode' })
end

local function get_clients()
  if vim.lsp.get_clients then
    return vim.lsp.get_clients({ name = 'qcode' })
  end
  local found = {}
  for _, client in pairs(vim.lsp.get_active_clients()) do
    if client.name == 'qcode' then
      table.insert(found, client)
    end
  end
  return found
end

--- The qcode client attached to `bufnr` (default: the current buffer), if any.
function M.client(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  for _, client in ipairs(get_clients()) do
    if vim.lsp.buf_is_attached(bufnr, client.id) then
      return client
    end
  end
  return nil
end

-- The version the client last sent for a buffer (what a versioned edit must match).
local function buffer_version(bufnr)
  local versions = vim.lsp.util.buf_versions
  local v = versions and versions[bufnr]
  if v == nil then
    v = vim.api.nvim_buf_get_changedtick(bufnr)
  end
  return v
end

local function redraw_status()
  pcall(vim.cmd, 'doautocmd <nomodeline> User QcodeProgress')
  pcall(vim.cmd, 'redrawstatus')
end

-- $/progress: Neovim's own handler first (it feeds `User LspProgressUpdate` on
-- 0.7 and `LspProgress` on 0.10+, and so any progress UI), then ours.
local function on_progress(err, result, ctx, config)
  local default = vim.lsp.handlers['$/progress']
  if default then
    pcall(default, err, result, ctx, config)
  end
  if err or type(result) ~= 'table' or type(result.value) ~= 'table' then
    return
  end
  local token, value = result.token, result.value
  local entry = M.state.progress[token] or {}
  if value.kind == 'begin' then
    entry = { title = value.title, message = value.message, percentage = value.percentage, done = false }
    if M.config.notify then
      notify((value.title or 'qcode') .. ' …  (:QcodeCancel stops it)')
    end
  elseif value.kind == 'report' then
    entry.message = value.message or entry.message
    entry.percentage = value.percentage or entry.percentage
  elseif value.kind == 'end' then
    entry.message = value.message
    entry.done = true
    if M.config.notify then
      notify('qcode: ' .. (value.message or 'done'))
    end
  end
  M.state.progress[token] = entry
  table.insert(M.state.history, {
    token = token, kind = value.kind, title = value.title, message = value.message, percentage = value.percentage,
  })
  redraw_status()
end

-- workspace/applyEdit: refuse an edit made for an older version of the buffer
-- (Neovim 0.7 would skip it and still answer "applied"), so qcode says so and
-- shows its program instead; otherwise Neovim's own handler applies it.
local function on_apply_edit(err, result, ctx, config)
  if result and result.edit and result.edit.documentChanges then
    for _, change in ipairs(result.edit.documentChanges) do
      local doc = change.textDocument
      if doc and doc.version ~= nil and doc.version ~= vim.NIL then
        local bufnr = vim.uri_to_bufnr(doc.uri)
        local now = buffer_version(bufnr)
        if now ~= nil and now > doc.version then
          return { applied = false, failureReason = string.format('the buffer changed (version %d, the edit is for %d)', now, doc.version) }
        end
      end
    end
  end
  return vim.lsp.handlers['workspace/applyEdit'](err, result, ctx, config)
end

-- workspace/executeCommand's answer, however the command was run (the code
-- action menu, the key, :QcodeCancel).
local function on_command_result(err, result, ctx)
  local command = ctx and ctx.params and ctx.params.command
  local answer = err and { error = err } or result
  if command == 'qcode.cancel' then
    M.state.last_cancel = answer
  else
    M.state.last_result = answer
  end
  -- A cancelled implement (-32800) was asked for; qcode explains every other failure itself.
  if err and err.code ~= -32800 then
    notify('qcode: ' .. (err.message or tostring(err)), vim.log.levels.ERROR)
  end
end

local function on_show_message(_, result)
  if type(result) ~= 'table' then
    return vim.NIL
  end
  local levels = { vim.log.levels.ERROR, vim.log.levels.WARN, vim.log.levels.INFO, vim.log.levels.DEBUG }
  table.insert(M.state.messages, { type = result.type, message = result.message })
  notify(result.message, levels[result.type] or vim.log.levels.INFO)
  return vim.NIL
end

local function capabilities()
  local caps = vim.lsp.protocol.make_client_capabilities()
  caps.window = caps.window or {}
  caps.window.workDoneProgress = true
  caps.workspace = caps.workspace or {}
  caps.workspace.applyEdit = true
  caps.workspace.workspaceEdit = caps.workspace.workspaceEdit or {}
  -- Neovim applies versioned documentChanges (0.7 does not say so); on_apply_edit checks the version.
  caps.workspace.workspaceEdit.documentChanges = true
  return caps
end

local function root_dir(bufnr)
  local name = vim.api.nvim_buf_get_name(bufnr)
  local dir = name ~= '' and vim.fn.fnamemodify(name, ':p:h') or vim.fn.getcwd()
  for _, marker in ipairs(M.config.root_markers) do
    local file = vim.fn.findfile(marker, dir .. ';')
    if file ~= '' then
      return vim.fn.fnamemodify(file, ':p:h')
    end
    local folder = vim.fn.finddir(marker, dir .. ';')
    if folder ~= '' then
      return vim.fn.fnamemodify(folder, ':p:h:h')  -- ':p' ends a folder with '/'
    end
  end
  return dir
end

local function client_config(bufnr)
  return {
    name = 'qcode',
    cmd = M.config.cmd,
    root_dir = bufnr and root_dir(bufnr) or nil,
    filetypes = M.config.filetypes,
    root_markers = M.config.root_markers,
    init_options = M.config.settings,
    settings = M.config.settings,
    capabilities = capabilities(),
    handlers = {
      ['$/progress'] = on_progress,
      ['workspace/applyEdit'] = on_apply_edit,
      ['window/showMessage'] = on_show_message,
      ['workspace/executeCommand'] = on_command_result,
    },
    on_attach = function(client, b)
      M.state.client_id = client.id
      M.attach(b)
    end,
  }
end

--- Buffer-local key for "Implement with qcode".
function M.attach(bufnr)
  if M.config.keymap then
    vim.api.nvim_buf_set_keymap(bufnr, 'n', M.config.keymap, '<cmd>lua require("qcode").implement()<CR>',
      { noremap = true, silent = true, desc = 'qcode: implement the function under the cursor' })
  end
end

-- Neovim 0.7-0.10: one client for every Python buffer of the session.
local function start_for(bufnr)
  if vim.lsp.start then  -- 0.8+: reuses a running client of the same name and root
    vim.lsp.start(client_config(bufnr), { bufnr = bufnr })
    return
  end
  local id = M.state.client_id
  if id == nil or vim.lsp.client_is_stopped(id) then
    id = vim.lsp.start_client(client_config(bufnr))
    M.state.client_id = id
  end
  if id then
    vim.lsp.buf_attach_client(bufnr, id)
  end
end

--- Asks qcode to write the body of the stub under the cursor.
function M.implement()
  local bufnr = vim.api.nvim_get_current_buf()
  local client = M.client(bufnr)
  if not client then
    notify('qcode is not running for this buffer (is it a Python file? see :checkhealth lsp or the LSP log)', vim.log.levels.WARN)
    return
  end
  local params = vim.lsp.util.make_range_params(0, client.offset_encoding or 'utf-16')
  params.context = { diagnostics = {}, only = { 'refactor.rewrite' } }
  call(client, 'request', 'textDocument/codeAction', params, function(err, actions)
    if err then
      notify('qcode: ' .. (err.message or tostring(err)), vim.log.levels.ERROR)
      return
    end
    for _, action in ipairs(actions or {}) do
      local command = action.command
      if command and (command.command == 'qcode.implement' or command.command == 'qcode.cancel') then
        M.execute(client, command, bufnr)
        return
      end
    end
    notify('qcode: no function stub under the cursor (a body that is empty, `...`, `pass` or `raise NotImplementedError`)',
      vim.log.levels.WARN)
  end, bufnr)
end

--- Runs a qcode command; its answer lands in M.state (see on_command_result).
function M.execute(client, command, bufnr)
  call(client, 'request', 'workspace/executeCommand', { command = command.command, arguments = command.arguments }, nil, bufnr)
end

--- Stops every search qcode runs for this session.
function M.cancel()
  local client = M.client() or get_clients()[1]
  if not client then
    notify('qcode is not running', vim.log.levels.WARN)
    return
  end
  M.execute(client, { command = 'qcode.cancel', arguments = {} }, vim.api.nvim_get_current_buf())
end

--- For a statusline: "qcode: 3 programs tried · 40%" while a search runs, else "".
function M.status()
  for _, p in pairs(M.state.progress) do
    if not p.done and p.title then
      local text = 'qcode: ' .. (p.message or p.title)
      if p.percentage then
        text = text .. string.format(' · %d%%', p.percentage)
      end
      return text
    end
  end
  return ''
end

function M.setup(opts)
  M.config = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  vim.cmd('command! QcodeCancel lua require("qcode").cancel()')
  vim.cmd('command! QcodeImplement lua require("qcode").implement()')
  if has_011 and vim.lsp.config and vim.lsp.enable then
    -- 0.11: the config is Neovim's; it attaches on FileType (run `filetype on`).
    vim.lsp.config('qcode', client_config(nil))
    vim.lsp.enable('qcode')
    return
  end
  vim.cmd('augroup qcode_lsp')
  vim.cmd('autocmd!')
  vim.cmd(string.format('autocmd FileType %s lua require("qcode")._filetype(tonumber(vim.fn.expand("<abuf>")))',
    table.concat(M.config.filetypes, ',')))
  vim.cmd('augroup END')
  -- Buffers already open.
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.tbl_contains(M.config.filetypes, vim.bo[bufnr].filetype) then
      start_for(bufnr)
    end
  end
end

function M._filetype(bufnr)
  start_for(bufnr)
end

return M
